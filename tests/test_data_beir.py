"""BEIR-shaped retrieval sets (lab.data.beir): BEIR folders, SQuAD paragraphs and chunks, Chroma excerpts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import require_data

from lab.chunking import make_chunker
from lab.data.beir import DROP_KEYS, RetrievalDataset, load_beir
from lab.data.squad import squad_paragraphs
from lab.errors import DataError
from lab.retrieval.sets import chroma_excerpts, squad_chunks

SQUAD = "squad_v1.1_dev"
FEW_ARTICLES = ["Super_Bowl_50", "Warsaw", "Normans"]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [(r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def beir_folder(root: Path, *, corpus=None, queries=None, qrels: str | None = None) -> Path:
    """A small BEIR folder; each part can be replaced to inject one fault."""
    write_jsonl(root / "corpus.jsonl", corpus if corpus is not None else [
        {"_id": "d1", "title": "Alpha", "text": "alpha text", "metadata": {"url": "x"}},
        {"_id": "d2", "text": "no title here"},                       # title-less
        {"_id": 3, "title": None, "text": "integer id, null title"},   # int id, null title
    ])
    write_jsonl(root / "queries.jsonl", queries if queries is not None else [
        {"_id": "q1", "text": "what is alpha?", "metadata": {"answers": ["a"]}},
        {"_id": "q2", "text": "second"},
        {"_id": "q3", "text": "no judgements at all"},
        {"_id": "q4", "text": "only non-relevant judgements"},
    ])
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "test.tsv").write_text(qrels if qrels is not None else (
        "query-id\tcorpus-id\tscore\n"
        "q1\td1\t1\n"
        "q1\td2\t0\n"
        "q2\t3\t2\n"
        "q2\tgone\t1\n"          # doc absent from the corpus
        "q9\td1\t1\n"            # query absent from queries.jsonl
        "q4\td1\t0\n"
    ), encoding="utf-8")
    return root


# --------------------------------------------------------------------------- BEIR folders


def test_load_beir_tolerates_and_counts(tmp_path: Path) -> None:
    ds = load_beir(beir_folder(tmp_path / "toy"))
    assert ds.name == "toy"
    assert ds.corpus == {"d1": {"title": "Alpha", "text": "alpha text"},
                         "d2": {"title": "", "text": "no title here"},
                         "3": {"title": "", "text": "integer id, null title"}}
    assert ds.queries == {"q1": "what is alpha?", "q2": "second"}
    assert ds.qrels == {"q1": {"d1": 1, "d2": 0}, "q2": {"3": 2}}
    s = ds.stats()
    assert set(DROP_KEYS) <= set(s)
    assert (s["qrels_dropped"], s["qrels_dropped_missing_doc"], s["qrels_dropped_missing_query"]) == (2, 1, 1)
    assert (s["queries_without_qrels"], s["queries_without_relevant"]) == (1, 1)
    assert (s["docs"], s["queries"], s["qrels"], s["qrels_relevant"]) == (3, 2, 3, 2)
    assert s["docs_without_title"] == 2
    assert ds.doc_texts() == (["d1", "d2", "3"],
                              ["Alpha\n\nalpha text", "no title here", "integer id, null title"])
    assert ds.doc_texts(with_title=False)[1][0] == "alpha text"


def test_qrels_without_header_trec_columns_and_duplicates(tmp_path: Path) -> None:
    ds = load_beir(beir_folder(tmp_path, qrels="q1\td1\t1\nq2\t3\t1\n"))
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"3": 1}}  # the first row is a judgement, not a header
    ds = load_beir(beir_folder(tmp_path, qrels="q1 0 d1 1\nq2 Q0 3 2\nq2 Q0 3 1\n"))
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"3": 1}}  # TREC; a repeat keeps the last score, as BEIR
    assert ds.stats()["qrels_duplicate"] == 1


def test_save_then_load_gives_the_same_dataset(tmp_path: Path) -> None:
    ds = load_beir(beir_folder(tmp_path / "src"))
    ds.corpus["d4"] = {"title": "Ünïcode — title", "text": "line one\nline two\t\"quoted\""}
    ds.save_beir(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")) == [
        "corpus.jsonl", "qrels", "qrels/test.tsv", "queries.jsonl"]  # no temp files left behind
    assert (tmp_path / "out/qrels/test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    again = load_beir(tmp_path / "out")
    assert again.name == "out"
    again.name = ds.name
    assert again == ds
    assert again.stats()["qrels_dropped"] == 0


def test_subset_is_deterministic_nested_and_keeps_the_corpus(tmp_path: Path) -> None:
    ds = RetrievalDataset("toy", {f"d{i}": {"title": "", "text": str(i)} for i in range(5)},
                          {f"q{i}": f"query {i}" for i in range(50)},
                          {f"q{i}": {f"d{i % 5}": 1} for i in range(50)})
    a, b = ds.subset(10, seed=1), ds.subset(10, seed=1)
    assert a == b and len(a.queries) == 10 and a.corpus == ds.corpus
    assert set(a.qrels) == set(a.queries) and list(a.queries) == [q for q in ds.queries if q in a.queries]
    assert set(a.queries) <= set(ds.subset(20, seed=1).queries)
    assert set(a.queries) != set(ds.subset(10, seed=2).queries)
    assert len(ds.subset(500).queries) == 50
    with pytest.raises(ValueError, match="n_queries must be a positive integer"):
        ds.subset(0)


@pytest.mark.parametrize(("part", "rows", "message"), [
    ("corpus", [{"_id": "d1", "text": "a"}, {"_id": "d2", "text": "b"}, {"_id": "d1", "text": "c"}],
     r"corpus\.jsonl:line 3: duplicate _id 'd1' \(first on line 1\)"),
    ("corpus", [{"_id": "d1", "text": "a"}, '{"_id": "d2", "text": ', {"_id": "d3", "text": "c"}],
     r"corpus\.jsonl:line 2: not valid JSON .*fix or delete the line"),
    ("corpus", [{"_id": "d1", "title": "t"}], r"corpus\.jsonl:line 1: field 'text' is missing or null"),
    ("corpus", [{"id": "d1", "text": "a"}], r"corpus\.jsonl:line 1: field '_id' is missing \(fields present"),
    ("corpus", [["d1", "a"]], r"corpus\.jsonl:line 1: expected a JSON object, got list"),
    ("corpus", [{"_id": "", "text": "a"}], r"corpus\.jsonl:line 1: field '_id' must be a non-empty string"),
    ("corpus", [{"_id": "d1", "text": 5}], r"corpus\.jsonl:line 1: field 'text' must be a string, got int"),
    ("queries", [{"_id": "q1", "text": "a"}, {"_id": "q1", "text": "b"}],
     r"queries\.jsonl:line 2: duplicate _id 'q1' \(first on line 1\)"),
])
def test_malformed_jsonl_names_file_line_and_field(tmp_path: Path, part: str, rows: list,
                                                   message: str) -> None:
    folder = beir_folder(tmp_path, **{part: rows})
    with pytest.raises(DataError, match=message):
        load_beir(folder)


@pytest.mark.parametrize(("qrels", "message"), [
    ("query-id\tcorpus-id\tscore\nq1\td1\n", r"test\.tsv:line 2: expected 3 tab-separated columns .* got 2"),
    ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n",
     r"test\.tsv:line 2: column 'score' must be an integer, got 'high'"),
    ("q1\td1\t0.5\n", r"test\.tsv:line 1: column 'score' must be an integer grade, got '0\.5'"),
])
def test_malformed_qrels_name_line(tmp_path: Path, qrels: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_beir(beir_folder(tmp_path, qrels=qrels))


def test_missing_files_and_bad_bytes(tmp_path: Path) -> None:
    folder = beir_folder(tmp_path / "set")
    with pytest.raises(DataError, match=r"qrels/dev\.tsv is missing; splits present in .*: test; pass split"):
        load_beir(folder, split="dev")
    (folder / "corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:line 2: not valid UTF-8 .*iconv"):
        load_beir(folder)
    (folder / "corpus.jsonl").unlink()
    with pytest.raises(DataError, match=r"corpus\.jsonl is missing; a BEIR folder holds"):
        load_beir(folder)


def test_save_refuses_ids_a_tsv_cannot_hold(tmp_path: Path) -> None:
    ds = RetrievalDataset("t", {"a\tb": {"title": "", "text": "x"}}, {"q": "?"}, {"q": {"a\tb": 1}})
    with pytest.raises(DataError, match=r"id 'a\\tb' contains a tab or newline"):
        ds.save_beir(tmp_path)
    assert not (tmp_path / "corpus.jsonl").exists()


# --------------------------------------------------------------------------- SQuAD


def squad_files() -> tuple[Path, Path]:
    folder = require_data() / "squad_v1.1_dev"
    return folder / "dev-v1.1.paragraphs.jsonl", folder / "dev-v1.1.qa.jsonl"


def test_squad_paragraphs_full_dev() -> None:
    ds = squad_paragraphs(*squad_files())
    s = ds.stats()
    assert (s["docs"], s["queries"], s["qrels_relevant"]) == (2067, 10570, 10570)
    assert s["relevant_per_query_max"] == 1
    assert all(doc in ds.corpus for rels in ds.qrels.values() for doc in rels)
    assert set(ds.qrels) == set(ds.queries)
    assert ds.corpus["1973_oil_crisis#0"]["title"] == "1973 oil crisis"
    assert ds.queries["5725b33f6a3fe71400b8952d"] == "When did the 1973 oil crisis begin?"


def test_squad_paragraphs_title_filter() -> None:
    ds = squad_paragraphs(*squad_files(), titles=["Super Bowl 50", "Warsaw"])
    assert {d["title"] for d in ds.corpus.values()} == {"Super Bowl 50", "Warsaw"}
    assert all(doc in ds.corpus for rels in ds.qrels.values() for doc in rels) and len(ds.queries) > 100
    with pytest.raises(DataError, match=r"no article titled \['Atlantis'\]; available"):
        squad_paragraphs(*squad_files(), titles=["Atlantis"])


def test_squad_question_with_unknown_paragraph_is_named(tmp_path: Path) -> None:
    paragraphs, _ = squad_files()
    qa = write_jsonl(tmp_path / "qa.jsonl", [
        {"id": "x1", "paragraph_id": "Nowhere#0", "title": "Nowhere", "question": "?", "answers": ["a"]}])
    with pytest.raises(DataError, match=r"qa\.jsonl:line 1: paragraph_id 'Nowhere#0' is not in"):
        squad_paragraphs(paragraphs, qa)


def test_squad_chunks_relevant_chunks_hold_an_answer() -> None:
    from lab.data.qa import load_squad

    paragraphs, qa = squad_files()
    chunker = make_chunker("recursive", size=100, overlap=0)
    ds = squad_chunks(paragraphs, qa, chunker, titles=FEW_ARTICLES)
    answers = {q.id: q.answers for q in load_squad(qa)}
    assert ds.queries and all(doc in ds.corpus for rels in ds.qrels.values() for doc in rels)
    for qid, rels in ds.qrels.items():
        for doc in rels:
            assert any(a in ds.corpus[doc]["text"] for a in answers[qid]), (qid, doc)
    # chunk ids and exact offsets: the chunks of an article rebuild from its joined paragraphs
    rows = [json.loads(line) for line in paragraphs.read_text(encoding="utf-8").splitlines()]
    article = "\n\n".join(r["text"] for r in rows if r["title"] == "Warsaw")
    chunks = chunker.chunk(article, doc_id="Warsaw")
    assert [ds.corpus[f"Warsaw#c{c.index}"]["text"] for c in chunks] == [c.text for c in chunks]
    assert ds.corpus["Warsaw#c0"]["title"] == "Warsaw"
    s = ds.stats()
    dropped = s["questions_answer_not_located"] + s["questions_answer_split"]
    assert s["questions_total"] == s["queries"] + dropped


def test_squad_chunks_full_dev_located_share() -> None:
    ds = squad_chunks(*squad_files(), make_chunker("recursive", size=100, overlap=0))
    s = ds.stats()
    located = s["questions_answer_located"] / s["questions_total"]
    print(f"\nSQuAD dev: {located:.2%} of {s['questions_total']} questions have a located answer; "
          f"{s['questions_answer_split']} split by a chunk boundary; "
          f"{s['questions_answer_repeated']} with a repeated answer string")
    assert s["questions_total"] == 10570 and located == 1.0  # v1.1 answers are verbatim spans of the context
    assert s["queries"] == 10570 - s["questions_answer_split"]
    assert len({d.rsplit("#c", 1)[0] for d in ds.corpus}) == 48  # one chunked document per article


def test_squad_chunks_by_paragraph_and_bad_by() -> None:
    chunker = make_chunker("recursive", size=100, overlap=0)
    ds = squad_chunks(*squad_files(), chunker, by="paragraph", titles=["Warsaw"])
    assert "Warsaw#0#c0" in ds.corpus and all(doc in ds.corpus for r in ds.qrels.values() for doc in r)
    with pytest.raises(ValueError, match="by must be 'article' or 'paragraph'"):
        squad_chunks(*squad_files(), chunker, by="sentence")


# --------------------------------------------------------------------------- Chroma


def test_chroma_excerpts_relevant_chunks_overlap_a_reference() -> None:
    from lab.data.qa import load_chroma

    data = require_data() / "chroma_chunking"
    chunker = make_chunker("recursive", size=250, overlap=0)
    ds = chroma_excerpts(data / "corpora", data / "questions_df.csv", chunker)
    assert len(ds.queries) == 472 and ds.stats()["questions_without_chunk"] == 0
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (data / "corpora").glob("*.md")}
    ranges = {f"{doc}#c{c.index}": (c.start, c.end)
              for doc, text in texts.items() for c in chunker.chunk(text, doc)}
    assert set(ranges) == set(ds.corpus)
    for q in load_chroma(data / "questions_df.csv"):
        for doc in ds.qrels[q.id]:
            start, end = ranges[doc]
            assert doc.startswith(f"{q.doc_id}#c")
            assert any(max(start, r.start) < min(end, r.end) for r in q.references)


def test_chroma_excerpts_reference_not_matching_names_the_row(tmp_path: Path) -> None:
    (tmp_path / "corpora").mkdir()
    text = "The quick brown fox jumps over the lazy dog."
    (tmp_path / "corpora" / "doc.md").write_text(text, encoding="utf-8")
    refs = [[{"content": "quick brown", "start_index": 4, "end_index": 15}],
            [{"content": "lazy dog", "start_index": 0, "end_index": 8}]]
    pd.DataFrame({"question": ["q1", "q2"], "references": [json.dumps(r) for r in refs],
                  "corpus_id": ["doc", "doc"]}).to_csv(tmp_path / "q.csv", index=False)
    chunker = make_chunker("recursive", size=5, overlap=0)
    with pytest.raises(DataError, match=r"q\.csv:row 2: references\[0\] offsets 0\.\.8 do not match .*at 35"):
        chroma_excerpts(tmp_path / "corpora", tmp_path / "q.csv", chunker)
