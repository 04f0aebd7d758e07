"""Ingestion end to end: the corpus folder and manifest of the issue-30 contract, re-ingest that
extracts only what changed, atomic writes, the DVC stage's function, the CLI, and the example corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import DATA
from ingest_fixtures import HTML_PAGE, report_pages, write_docx, write_pdf
from typer.testing import CliRunner

from lab.cli import app
from lab.data.benchmarks import load_corpus_folder
from lab.ingest import IngestOptions, ingest, read_manifest
from lab.ingest.cache import ExtractionCache

runner = CliRunner()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """One small document of each format."""
    src = tmp_path / "src"
    write_pdf(src / "pdf" / "report.pdf", report_pages(4))
    write_docx(src / "docx" / "plan.docx")
    (src / "html").mkdir()
    (src / "html" / "baselines.html").write_text(HTML_PAGE, encoding="utf-8")
    (src / "notes.md").write_text("---\ntitle: Notes\n---\n# Notes\n\nFirst version.\n", encoding="utf-8")
    (src / "readme.txt").write_text("Plain text.\nSecond line.\n", encoding="utf-8")
    return src


def test_the_output_is_a_corpus_folder_and_a_versioned_manifest(corpus, tmp_path):
    out = tmp_path / "out"
    _, manifest = ingest([corpus], out, cache=ExtractionCache(tmp_path / "cache"), progress="off")
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["format"] == "lab.ingest-manifest" and raw["version"] == 1
    assert read_manifest(out / "manifest.json") == manifest
    ids = ["docx/plan.docx", "html/baselines.html", "notes.md", "pdf/report.pdf", "readme.txt"]
    assert [d.id for d in manifest.documents] == ids
    texts = load_corpus_folder(out / "docs", glob="**/*.txt")
    assert sorted(texts) == ids
    for d in manifest.documents:
        text = (out / d.text_file).read_text(encoding="utf-8")
        assert texts[d.id] == text and d.chars == len(text) and len(d.sha256) == 64
        assert d.extractor and d.extractor_version and d.title and d.source == d.id and d.root == str(corpus)
        for s in d.sections:
            assert 0 <= s.start <= s.end <= len(text)
    pdf = manifest.by_id()["pdf/report.pdf"]
    text = (out / pdf.text_file).read_text(encoding="utf-8")
    assert (pdf.pages[0].page, pdf.pages[0].start) == (1, 0) and pdf.pages[-1].end == len(text)
    assert "body text of page 3" in text[pdf.pages[2].start:pdf.pages[2].end]
    assert manifest.changes.added == ids and not manifest.changes.changed
    assert manifest.extractors["pdf"].startswith("pypdfium2 ") and manifest.options["ocr"] is False


def test_reingest_extracts_only_the_changed_file_and_drops_a_deleted_one(corpus, tmp_path):
    out, cache = tmp_path / "out", ExtractionCache(tmp_path / "cache")
    first, _ = ingest([corpus], out, cache=cache, progress="off")
    assert (first.extracted, first.cached) == (5, 0)
    again, manifest = ingest([corpus], out, cache=cache, progress="off")
    assert (again.extracted, again.cached) == (0, 5) and len(manifest.changes.unchanged) == 5

    (corpus / "notes.md").write_text("---\ntitle: Notes\n---\n# Notes\n\nSecond version, longer.\n", encoding="utf-8")
    (corpus / "html" / "baselines.html").unlink()
    third, manifest = ingest([corpus], out, cache=cache, progress="off")
    assert (third.extracted, third.cached) == (1, 3)
    assert manifest.changes.changed == ["notes.md"] and manifest.changes.removed == ["html/baselines.html"]
    assert manifest.changes.added == [] and len(manifest.changes.unchanged) == 3
    assert not (out / "docs" / "html").exists()
    assert "Second version" in (out / "docs" / "notes.md.txt").read_text()

    shutil.rmtree(out)   # what DVC does to a stage's outputs before it runs it
    (corpus / "readme.txt").write_text("Changed under DVC.\n", encoding="utf-8")
    fourth, manifest = ingest([corpus], out, cache=cache, progress="off")
    assert fourth.extracted == 1 and manifest.changes.changed == ["readme.txt"] and not manifest.changes.added


def test_ocr_option_is_part_of_the_cache_key(corpus, tmp_path):
    cache = ExtractionCache(tmp_path / "cache")
    ingest([corpus / "readme.txt"], tmp_path / "a", cache=cache, progress="off")
    if shutil.which("tesseract") is None:
        pytest.skip("Tesseract is not installed")
    again, _ = ingest([corpus / "readme.txt"], tmp_path / "b", IngestOptions(ocr=True), cache=cache, progress="off")
    assert again.extracted == 1


def test_a_run_killed_while_writing_leaves_the_previous_corpus_whole(corpus, tmp_path, monkeypatch):
    out, cache = tmp_path / "out", ExtractionCache(tmp_path / "cache")
    _, before = ingest([corpus], out, cache=cache, progress="off")
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (corpus / "readme.txt").write_text("Changed.\n")
    calls = []

    def dying_copy(key, dest):
        calls.append(key)
        if len(calls) == 3:
            raise KeyboardInterrupt   # what Ctrl-C does in the middle of the write
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache.text_path(key), dest)

    monkeypatch.setattr(cache, "copy_text", dying_copy)
    with pytest.raises(KeyboardInterrupt):
        ingest([corpus], out, cache=cache, progress="off")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert read_manifest(out / "manifest.json") == before and not list(out.glob(".docs.tmp-*"))


def test_the_stage_function_writes_the_corpus_metrics_and_progress_lines(corpus, tmp_path, capsys):
    from lab.stages import run_stage

    shutil.copytree(corpus, tmp_path / "project" / "docs_in")
    params = {"ingest": {"sources": ["docs_in"], "exclude": ["*.txt"], "out_dir": "results/ingest"}}
    (tmp_path / "project" / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "project" / "dvc.yaml").write_text("stages: {}\n")
    run = run_stage("ingest", tmp_path / "project" / "params.yaml")
    out = tmp_path / "project" / "results" / "ingest"
    manifest = read_manifest(out / "manifest.json")
    assert [d.root for d in manifest.documents] == ["docs_in"] * 4          # as configured, not absolute
    assert [s.reason for s in manifest.skipped] == ["excluded by --exclude '*.txt'"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == run.result.metrics()
    assert metrics["documents"] == 4 and metrics["pages"] == 4 and metrics["format.pdf"] == 1
    assert metrics["skipped"] == 1 and metrics["failed"] == 0 and metrics["boilerplate.page_numbers"] == 4
    assert "Ingested **4 documents**" in run.result.finding()
    assert run.result.report_sections(out)[0][0] == "Documents"
    err = capsys.readouterr().err
    assert "ingest [1/4] docx/plan.docx:" in err and "ingest [4/4] pdf/report.pdf: 4 pages" in err


def test_cli_ingest_json_and_a_clear_error_without_tesseract(corpus, tmp_path, monkeypatch):
    out = tmp_path / "out"
    res = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--exclude", "*.md", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["documents"] == 4 and summary["changes"]["added"] == 4 and summary["skipped"] == 1
    res = runner.invoke(app, ["ingest", str(corpus), "--out", str(out)])
    assert res.exit_code == 0 and "changes: 1 added, 0 changed, 0 removed, 4 unchanged" in res.stdout
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    res = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--ocr"])
    assert res.exit_code == 2 and "apt-get install -y tesseract-ocr" in res.output


def test_the_example_corpus(tmp_path):
    src = DATA / "own_docs"
    if not (src / "SOURCES.md").is_file():
        pytest.fail("data/own_docs is missing: run `dvc pull` (bash scripts/setup.sh does)")
    result, manifest = ingest([src], tmp_path / "out", IngestOptions(exclude=("SOURCES.md",)), progress="off")
    s = result.summary()
    assert s["documents"] == 49 and s["formats"] == {"docx": 8, "html": 10, "markdown": 13, "pdf": 18}
    assert s["failed"] == 0 and [x.source for x in manifest.skipped] == ["SOURCES.md"]
    scans = {d.id: d.scanned_pages for d in manifest.documents if d.scanned_pages}
    assert scans == {"pdf/FedRAMP_Joint_Authorization_Board_Charter_v2.0_2016.pdf": list(range(1, 8)),
                     "pdf/FedRAMP_Joint_Authorization_Board_Charter_v3.0_2018.pdf": list(range(1, 9))}
    assert s["with_text"] == 47 and s["pages"] == 523
    assert set(s["boilerplate"]) >= {"header_footer_lines", "page_numbers", "html_nav", "html_lines_dropped",
                                     "front_matter_lines", "markdown_html_tags", "docx_header_footer_lines"}
    docs = manifest.by_id()
    playbook = (tmp_path / "out" / docs["pdf/CSP_Authorization_Playbook.pdf"].text_file).read_text()
    assert "fedramp.gov page" not in playbook and "Getting Started: Is FedRAMP Right For You?" in playbook
    faq = docs["html/faqs.html"]
    assert len(faq.sections) > 20 and "Is FedRAMP mandatory?" in [x.title for x in faq.sections]
    nist = docs["pdf/NIST.SP.800-37r2.pdf"]
    assert len(nist.sections) > 100 and len(nist.pages) == 183   # the PDF outline gives its sections
    roadmap = (tmp_path / "out" / docs["markdown/2024-03-28-a-new-roadmap-for-fedramp.md"].text_file).read_text()
    assert docs["markdown/2024-03-28-a-new-roadmap-for-fedramp.md"].title == "A New Roadmap for FedRAMP"
    assert "<a href" not in roadmap and "permalink:" not in roadmap
