"""Provenance of your own documents end to end: a span's pages and section from the ingest manifest,
a corpus folder's passages carrying them, the bundle keeping them and the gateway's sources naming
document and page (issue 30); the SQuAD bundle and its sources stay as they were."""

from __future__ import annotations

import json
from pathlib import Path

import manifest_fixture
import pytest

from lab.chunking import make_chunker
from lab.errors import DataError
from lab.ingest.manifest import FORMAT, VERSION, DocumentRecord, PageSpan, Section
from lab.ingest.provenance import DocumentMap, citation, document_map, read_document_maps
from lab.retrieval.sets import folder_corpus
from lab.versioned import write_versioned


def _page(page: int, start: int, end: int) -> PageSpan:
    return PageSpan(page=page, start=start, end=end)


def _section(title: str, level: int, start: int, end: int) -> Section:
    return Section(title=title, level=level, start=start, end=end)


# --------------------------------------------------------------------------- the mapping

PDF = DocumentMap("pdf/guide.pdf", "pdf/guide.pdf", "Guide", 30,
                  pages=(_page(1, 0, 10), _page(2, 10, 20), _page(3, 20, 30)))


@pytest.mark.parametrize("span,pages", [
    ((2, 8), (1, 1)),      # inside a page
    ((0, 10), (1, 1)),     # the whole page: ends are exclusive, page 2 starts at 10
    ((10, 12), (2, 2)),    # starts where page 1 ends: on page 2
    ((8, 12), (1, 2)),     # across two pages
    ((9, 21), (1, 3)),     # across three
    ((0, 30), (1, 3)),
    ((10, 10), (2, 2)),    # an empty span at a boundary: located at its start
    ((29, 30), (3, 3)),
])
def test_a_span_is_on_the_pages_it_overlaps(span, pages):
    assert PDF.locate(*span).pages == pages


def test_a_span_off_every_page_or_a_document_without_pages_has_none():
    assert PDF.locate(30, 35).pages is None
    assert DocumentMap("a.md", "a.md").locate(0, 5).pages is None
    # a blank (scanned) page has no characters: a span across it still runs first..last
    blank = DocumentMap("s.pdf", "s.pdf", pages=(_page(1, 0, 10), _page(2, 10, 10), _page(3, 10, 20)))
    assert blank.locate(5, 15).pages == (1, 3) and blank.locate(10, 15).pages == (3, 3)
    with pytest.raises(ValueError, match="not a span"):
        PDF.locate(5, 4)


#  0         1         2         3         4         5         6         7         8         9
#  [Guide                                                                                    ) level 1, 0..100
#            [Authorization                          )                                       level 2, 10..50
#                      [Agency  )                                                            level 3, 20..30
#                                                    [Continuous Monitoring                  ) level 2, 50..100
HTML = DocumentMap("html/faq.html", "html/faq.html", sections=(
    _section("Guide", 1, 0, 100), _section("Authorization", 2, 10, 50), _section("Agency", 3, 20, 30),
    _section("Continuous Monitoring", 2, 50, 100)))


@pytest.mark.parametrize("start,section", [
    (0, "Guide"), (9, "Guide"), (10, "Authorization"), (20, "Agency"), (29, "Agency"), (30, "Authorization"),
    (50, "Continuous Monitoring"), (99, "Continuous Monitoring"), (100, None),
])
def test_a_span_is_in_the_innermost_section_holding_its_first_character(start, section):
    where = HTML.locate(start, start + 1)
    assert where.section == section
    assert where.section_path[-1:] == ((section,) if section else ())   # the innermost is the path's last


def test_the_section_path_holds_every_section_outermost_first():
    assert HTML.locate(25, 26).section_path == ("Guide", "Authorization", "Agency")
    assert HTML.locate(60, 61).section_path == ("Guide", "Continuous Monitoring")
    assert HTML.locate(100, 100).section_path == () and PDF.locate(3, 4).section_path == ()


def test_a_span_running_into_the_next_heading_is_cited_where_it_begins():
    assert HTML.locate(25, 60).section == "Agency"
    # text before the first heading is in no section; the order of the records does not matter
    late = DocumentMap("b.md", "b.md", sections=(_section("Sub", 2, 20, 30), _section("Top", 1, 10, 40)))
    assert late.locate(0, 5).section is None and late.locate(25, 26).section == "Sub"
    record = DocumentRecord.model_validate(manifest_fixture.record(
        "b.md", title="B", chars=40, sections=[{"title": "Sub", "level": 2, "start": 20, "end": 30},
                                               {"title": "Top", "level": 1, "start": 10, "end": 40}]))
    doc = document_map(record)
    assert (doc.id, doc.source, doc.title, doc.chars) == ("b.md", "b.md", "B", 40)
    assert [s.title for s in doc.sections] == ["Top", "Sub"] and doc.locate(25, 26).section == "Sub"


def test_the_citation_names_the_file_and_the_page_or_section():
    long_path = "pdf/FedRAMP_Baselines_Rev5_Transition_Guide.pdf"
    assert citation(long_path, [4, 4]) == "FedRAMP_Baselines_Rev5_Transition_Guide.pdf, p. 4"
    assert citation("pdf/x.pdf", [4, 5]) == "x.pdf, p. 4-5"
    assert citation("html/faq.html", None, "Continuous  Monitoring\n") == "faq.html, § Continuous Monitoring"
    assert citation("pdf/x.pdf", [2, 3], "Scope") == "x.pdf, p. 2-3, § Scope"
    assert citation("notes.txt") == "notes.txt" and citation("win\\dir\\a.docx", None, "S") == "a.docx, § S"
    assert citation("a.md", None, "x" * 300).endswith("...") and len(citation("a.md", None, "x" * 300)) < 120


@pytest.mark.parametrize("records,message", [
    ([manifest_fixture.record("d.pdf", pages=[{"page": 1, "start": "0", "end": 5}])],
     r"documents\.0\.pages\.0\.start: Input should be a valid integer \(document 'd\.pdf'"),
    ([manifest_fixture.record("d.pdf", pages=[{"page": 1, "start": 0, "end": 6}, {"page": 2, "start": 5, "end": 9}])],
     r"documents\.0\.pages: Value error, pages 1 \(0\.\.6\) and 2 \(5\.\.9\) overlap"),
    ([manifest_fixture.record("d.md", sections=[{"title": "T", "level": 1, "start": 9, "end": 3}])],
     r"documents\.0\.sections\.0: Value error, start 9 is after end 3"),
    ([{k: v for k, v in manifest_fixture.record("x").items() if k != "id"}], r"documents\.0\.id: Field required"),
    ([manifest_fixture.record("a"), manifest_fixture.record("a")], r"documents: Value error, document id 'a' occurs twice"),
    (["not a record"], r"documents\.0: Input should be a valid dictionary"),
])
def test_a_malformed_manifest_record_is_named(tmp_path: Path, records, message):
    """The manifest is read by the one typed reader: a malformed record (skipped or half-read by the
    raw readers before) is a DataError naming the file, the key and the document."""
    path = tmp_path / "manifest.json"
    write_versioned(path, FORMAT, VERSION, {"documents": records})
    with pytest.raises(DataError, match=rf"manifest\.json: {message}.*write it again"):
        read_document_maps(path)


def test_reading_a_manifest_does_not_import_the_extractors():
    """lab.ingest's __init__ is lazy: the readers of an ingested corpus load lab.ingest.manifest and
    lab.ingest.provenance only; ``from lab.ingest import ingest`` is still the function."""
    import subprocess
    import sys

    code = ("import sys\n"
            "import lab.ingest.provenance, lab.testset.review, lab.testset.excerpts, lab.data.benchmarks, "
            "lab.retrieval.sets\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('lab.ingest.'))\n"
            "assert loaded == ['lab.ingest.manifest', 'lab.ingest.provenance'], loaded\n"
            "import lab.ingest.ingest\n"
            "from lab.ingest import IngestOptions, Manifest, ingest, read_manifest\n"
            "assert ingest is sys.modules['lab.ingest.ingest'].ingest and callable(ingest)\n"
            "assert Manifest.__module__ == 'lab.ingest.manifest'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- an ingested corpus folder

GUIDE_PAGES = [
    "FedRAMP Baselines Transition Guide\n\nThis guide explains the move to Revision 5 baselines.\n\n",
    "Continuous monitoring requires monthly vulnerability scans of the whole inventory.\n\n",
    "Plans of action and milestones track every open finding until it is closed.\n",
]
FAQ = [
    ("Frequently Asked Questions", 1, "Frequently Asked Questions\n\n"),
    ("Authorization", 2, "Authorization\n\nAn agency authorization takes about six months from kickoff.\n\n"),
    ("Continuous Monitoring", 2, ("Continuous Monitoring\n\nProviders send their scan results to the agency "
                                  "every month through the repository.\n")),
]


def ingested_corpus(root: Path) -> Path:
    """A corpus folder as ``lab ingest`` writes it (CONTRACT): ``root/docs/<doc_id>.txt`` and
    ``root/manifest.json`` with a PDF's page map and an HTML page's sections; the folder."""
    docs = root / "docs"
    (docs / "pdf").mkdir(parents=True)
    (docs / "html").mkdir()
    guide = "".join(GUIDE_PAGES)
    (docs / "pdf" / "guide.pdf.txt").write_text(guide, encoding="utf-8")
    faq = "".join(t for _, _, t in FAQ)
    (docs / "html" / "faq.html.txt").write_text(faq, encoding="utf-8")
    pages, at = [], 0
    for i, text in enumerate(GUIDE_PAGES, start=1):
        pages.append({"page": i, "start": at, "end": at + len(text)})
        at += len(text)
    sections, at = [{"title": FAQ[0][0], "level": 1, "start": 0, "end": len(faq)}], len(FAQ[0][2])
    for title, level, text in FAQ[1:]:
        sections.append({"title": title, "level": level, "start": at, "end": at + len(text)})
        at += len(text)
    common = {"root": "own_docs", "bytes": 1, "extractor": "fake", "extractor_version": "1", "scanned_pages": [],
              "ocr_pages": [], "boilerplate": {}, "warnings": [], "duplicate_of": None, "sha256": "0" * 64}
    body = {"documents": [
        {"id": "html/faq.html", "source": "html/faq.html", "format": "html", "title": "FedRAMP FAQ", "chars": len(faq),
         "text_file": "docs/html/faq.html.txt", "pages": [], "sections": sections, **common},
        {"id": "pdf/guide.pdf", "source": "pdf/guide.pdf", "format": "pdf", "title": "Transition Guide",
         "chars": len(guide), "text_file": "docs/pdf/guide.pdf.txt", "pages": pages, "sections": [], **common}],
        "failed": [], "changes": {"added": ["html/faq.html", "pdf/guide.pdf"], "changed": [], "removed": [],
                                  "unchanged": []},
        "options": {}, "extractors": {}}
    write_versioned(root / "manifest.json", FORMAT, VERSION, body)
    return docs


def _brute_pages(pages: list[dict], start: int, end: int) -> list[int]:
    hit = [p["page"] for p in pages if p["start"] < end and start < p["end"]]
    return [hit[0], hit[-1]]


def test_an_ingested_folder_gives_passages_with_file_pages_and_section(tmp_path: Path):
    docs = ingested_corpus(tmp_path)
    corpus = folder_corpus(docs, make_chunker("recursive", size=12, overlap=0))
    maps = read_document_maps(tmp_path / "manifest.json")
    raw = json.loads((tmp_path / "manifest.json").read_text())["documents"][1]
    texts = {"pdf/guide.pdf": "".join(GUIDE_PAGES), "html/faq.html": "".join(t for _, _, t in FAQ)}
    assert sorted({p["doc_id"] for p in corpus.values()}) == ["html/faq.html", "pdf/guide.pdf"] and len(corpus) > 4
    for pid, p in corpus.items():
        doc, index = pid.rsplit("#c", 1)
        assert doc == p["doc_id"] and index.isdigit() and texts[doc][p["start"]:p["end"]] == p["text"]
        assert p["source"] == doc and p["title"] == maps[doc].title
        if doc == "pdf/guide.pdf":
            assert p["pages"] == _brute_pages(raw["pages"], p["start"], p["end"]) and "section" not in p
        else:
            assert "pages" not in p and p["section"] in {"Frequently Asked Questions", "Authorization",
                                                         "Continuous Monitoring"}
    scans = next(p for p in corpus.values() if "monthly vulnerability scans" in p["text"])
    assert scans["pages"] == [2, 2]
    monthly = next(p for p in corpus.values() if "scan results" in p["text"])
    assert monthly["section"] == "Continuous Monitoring"
    # without a chunker, each document is one passage (id = doc id) spanning all its pages
    whole = folder_corpus(docs, None)
    assert list(whole) == ["html/faq.html", "pdf/guide.pdf"] and whole["pdf/guide.pdf"]["pages"] == [1, 3]


def test_a_folder_without_manifest_keeps_offsets_only_and_a_stale_manifest_is_refused(tmp_path: Path):
    (tmp_path / "plain").mkdir()   # a folder like Chroma's corpora: flat, no manifest
    (tmp_path / "plain" / "guide.txt").write_text("".join(GUIDE_PAGES), encoding="utf-8")
    plain = folder_corpus(tmp_path / "plain", make_chunker("recursive", size=12))
    assert all(set(p) == {"title", "text", "doc_id", "start", "end"} and p["title"] == "" for p in plain.values())
    assert next(iter(plain)) == "guide#c0"
    docs = ingested_corpus(tmp_path / "stale")
    (docs / "pdf" / "guide.pdf.txt").write_text("".join(GUIDE_PAGES) + "more", encoding="utf-8")
    with pytest.raises(DataError, match="pdf/guide.pdf has .* characters in the manifest .* ingest again"):
        folder_corpus(docs, None)
    (docs / "pdf" / "guide.pdf.txt").unlink()
    with pytest.raises(DataError, match=r"records without a file: \['pdf/guide.pdf'\]"):
        folder_corpus(docs, None)
    # another tool's manifest.json beside a plain folder is not an ingest manifest: ignored
    (tmp_path / "manifest.json").write_text('{"name": "something else"}')
    assert folder_corpus(tmp_path / "plain", None)["guide"]["title"] == ""
    (tmp_path / "manifest.json").write_text('{"format": "lab.ingest-manifest", "version": 0}')
    with pytest.raises(DataError, match="an older lab.ingest-manifest file"):
        folder_corpus(tmp_path / "plain", None)


def test_chroma_excerpts_indexes_the_passages_folder_corpus_serves(tmp_path: Path):
    """No skew: the chunking questions over an ingested folder and the bundle's corpus are one build."""
    import csv

    from lab.retrieval.sets import chroma_excerpts

    docs = ingested_corpus(tmp_path)
    text = "".join(GUIDE_PAGES)
    at = text.index("monthly vulnerability scans")
    ref = [{"content": "monthly vulnerability scans", "start_index": at, "end_index": at + 27}]
    with open(tmp_path / "q.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "references", "corpus_id"])
        w.writerow(["How often are scans run?", json.dumps(ref), "pdf/guide.pdf"])
    chunker = make_chunker("recursive", size=12, overlap=0)
    ds = chroma_excerpts(docs, tmp_path / "q.csv", chunker)
    assert ds.corpus == folder_corpus(docs, chunker)
    (rel,) = ds.qrels.values()
    assert all(ds.corpus[d]["pages"] == [2, 2] for d in rel)


# --------------------------------------------------------------------------- bundle and gateway


def _bundle(out: Path, corpus) -> Path:
    from test_serve import BM25, _choice, write_bundle

    from lab.handoff.bundle import ServedModel

    return write_bundle(out, retrieval_config=BM25, corpus=corpus, model=ServedModel("m", spec="m"),
                        choice=_choice(), k=2, provenance={"bundle_id": "b1"})


def test_the_gateway_cites_document_and_page_plain_and_streamed(tmp_path: Path):
    from test_serve import Echo, _client, _gateway

    corpus = folder_corpus(ingested_corpus(tmp_path / "own"), make_chunker("recursive", size=12, overlap=0))
    b = _bundle(tmp_path / "b", corpus)
    lines = [json.loads(x) for x in (b / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(set(r) >= {"id", "title", "text", "doc_id", "start", "end", "source"} for r in lines)
    echo = Echo()
    c = _client(_gateway(b, echo, tmp_path))
    question = {"role": "user", "content": "How often are vulnerability scans of the inventory required?"}
    r = c.post("/v1/chat/completions", json={"messages": [question]})
    assert r.status_code == 200, r.text
    top = r.json()["sources"][0]
    assert top["document"] == "pdf/guide.pdf" and top["pages"] == [2, 2] and "monthly vulnerability" in top["text"]
    assert top["citation"] == "guide.pdf, p. 2" and "section" not in top
    assert "[1] " + top["text"].strip() in echo.calls[0][-1]["content"]   # source 1 is the prompt's [1]
    assert "Topic: Transition Guide" in echo.calls[0][-1]["content"]        # the document's title
    with c.stream("POST", "/v1/chat/completions",
                  json={"messages": [{"role": "user", "content": "Who receives the monthly scan results?"}],
                        "stream": True}) as resp:
        events = [line[5:].strip() for line in resp.iter_lines() if line.startswith("data:")]
    srcs = json.loads(events[-2])["sources"]
    faq = next(s for s in srcs if s["document"] == "html/faq.html")
    assert faq["section"] == "Continuous Monitoring" and faq["citation"] == "faq.html, § Continuous Monitoring"
    assert "pages" not in faq


def test_the_squad_bundle_and_its_sources_are_as_before(tmp_path: Path):
    """No manifest, no new fields: passages.jsonl lines are {id, title, text} byte for byte as the
    writer wrote them before, and the sources are {id, score, title, text}."""
    from test_serve import BM25, CORPUS, Echo, _client, _gateway

    from lab.retrieval.configured import ConfiguredRetriever

    b = _bundle(tmp_path / "b", CORPUS)
    before = "".join(json.dumps({"id": d, "title": CORPUS[d].get("title", ""), "text": t}, ensure_ascii=False) + "\n"
                     for d, t in ConfiguredRetriever(BM25, CORPUS).passages.items())
    assert (b / "passages.jsonl").read_text(encoding="utf-8") == before
    r = _client(_gateway(b, Echo(), tmp_path)).post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": "What is the capital of Poland?"}]})
    assert [set(s) for s in r.json()["sources"]] == [{"id", "score", "title", "text"}] * len(r.json()["sources"])


def test_a_bundle_passage_with_malformed_pages_is_named(tmp_path: Path):
    from lab.handoff.bundle import BundleError
    from lab.serve.rag import RAG

    corpus = {"a#c0": {"title": "", "text": "alpha beta", "doc_id": "a", "start": 0, "end": 10, "pages": [1, 2]}}
    b = _bundle(tmp_path / "b", corpus)
    path = b / "passages.jsonl"
    path.write_text(path.read_text().replace('"pages": [1, 2]', '"pages": "2"'))
    with pytest.raises(BundleError, match=r"passages.jsonl.*'pages' must be \[first, last\]"):
        RAG(b)


def test_export_serves_an_ingested_corpus_folder_with_provenance(tmp_path: Path):
    from test_export_stage import _study_outputs

    from lab.config import ExportConfig
    from lab.export.stage import run
    from lab.stage import StagePaths

    _study_outputs(tmp_path)
    ingested_corpus(tmp_path / "ingested")
    cfg = ExportConfig(manifest="results/ft/arms.json", predictions="results/ft/predictions.jsonl",
                       results="results/ft/results.csv", arms=["rag", "lora_rag"], register_model=False,
                       n_resamples=200, out_dir="results/export", corpus_dir="ingested/docs")
    assert cfg.paths()["corpus_dir"] == "ingested/docs"   # a dependency of the stage
    paths = StagePaths.for_config(cfg, tmp_path)
    result = run(cfg, paths)
    result.write(paths.out_dir)
    lines = [json.loads(x) for x in (paths.out_dir / "bundle" / "passages.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == ["html/faq.html", "pdf/guide.pdf"]   # chunker none: whole documents
    assert lines[1]["pages"] == [1, 3] and lines[1]["source"] == "pdf/guide.pdf"
    assert result.provenance["corpus_dir"] == "ingested/docs"
