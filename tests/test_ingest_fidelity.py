"""benchmarks/ingest_fidelity.py: reviewed excerpts looked up in lab's text and in the original."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import load_script
from ingest_fixtures import write_docx, write_pdf

from lab.ingest import ingest
from lab.ingest.cache import ExtractionCache
from lab.testset.review import record_decision


def _bench():
    return load_script("benchmarks/ingest_fidelity.py")


def test_shares_per_format_with_multi_document_references_and_a_rejected_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = Path("docs")
    src.mkdir()
    write_pdf(src / "report.pdf", [["The annual budget was approved in March."], ["Reviews happen every quarter."]])
    write_docx(src / "plan.docx")
    (src / "notes.md").write_text("# Notes\n\nThe **board** meets <a href='x'>every quarter</a> to review risks.\n",
                                  encoding="utf-8")
    (src / "page.html").write_text(
        "<html><head><title>Office</title></head><body><nav><a href='/'>Home</a></nav><main><h1>Office hours</h1>"
        "<p>The office opens at nine in the morning and closes at five in the afternoon on every working day "
        "of the week, except on public holidays, when it stays closed all day.</p></main>"
        "<script>track()</script></body></html>", encoding="utf-8")
    _, manifest = ingest([src], Path("out"), cache=ExtractionCache(tmp_path / "cache"), progress="off")
    ids = {d.format: d.id for d in manifest.documents}

    def ref(fmt: str, text: str) -> dict:
        return {"content": text, "corpus_id": ids[fmt]}

    rows = [
        {"id": "a", "question": "When?", "answer": "March", "question_type": "single", "split": "heldout",
         "corpus_id": ids["pdf"], "references": json.dumps([ref("pdf", "The annual budget was approved in March.")])},
        {"id": "b", "question": "Who and what?", "answer": "x", "question_type": "multi", "split": "heldout",
         "corpus_id": ids["markdown"],   # its second excerpt is from the Word file
         "references": json.dumps([ref("markdown", "The board meets every quarter to review risks."),
                                   ref("docx", "This plan restores the system after an outage.")])},
        {"id": "c", "question": "Garbled?", "answer": "y", "question_type": "single", "split": "heldout",
         "corpus_id": ids["pdf"], "references": json.dumps([ref("pdf", "Reviews happen every year.")])},
        {"id": "d", "question": "Rejected?", "answer": "z", "question_type": "single", "split": "heldout",
         "corpus_id": ids["pdf"], "references": json.dumps([ref("pdf", "not in the document at all")])},
        {"id": "f", "question": "Opens when?", "answer": "nine", "question_type": "single", "split": "heldout",
         "corpus_id": ids["html"], "references": json.dumps([ref("html", "The office opens at nine in the morning")])},
        {"id": "e", "question": "Unanswerable?", "answer": "", "question_type": "unanswerable", "split": "heldout",
         "corpus_id": "", "references": "[]"},
    ]
    testset = tmp_path / "testset.csv"
    with testset.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    record_decision(testset, "d", "reject", reason="excerpt boilerplate or garbled")

    got = _bench().measure(testset, Path("out") / "manifest.json", Path("."))
    assert got["rows_reviewed"] == 5 and got["skipped_rows"]["no_reference"] == 1
    assert got["per_format"]["html"]["share_in_original"] == 1.0   # the page read by selectolax (lexbor)
    per = got["per_format"]
    assert per["pdf"]["excerpts"] == 2 and per["pdf"]["in_original"] == 1 and per["pdf"]["in_extracted"] == 1
    assert per["markdown"]["share_in_original"] == 1.0 and per["docx"]["share_in_original"] == 1.0
    assert [m["id"] for m in got["misses"]] == ["c"]
