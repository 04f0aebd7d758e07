"""A tiny ingested corpus (a PDF's text with pages, a Markdown file's text with sections, the
manifest beside them) and a 3-item test set on it, for the review tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import manifest_fixture

PAGE1 = "Security controls are selected by the system owner. "
PAGE2 = "The authorizing official accepts the residual risk <b>in writing</b> & signs. "
PAGE3 = "Continuous monitoring follows authorization. " * 3
NOTES = "# Intro\nThis guide covers FedRAMP.\n## Scope\nCloud services used by agencies <script>alert(1)</script>.\n"


def make(tmp_path: Path) -> tuple[Path, Path]:
    """(test set CSV, corpus folder) under ``tmp_path``; the manifest is ``corpus/../manifest.json``."""
    docs = tmp_path / "ingest" / "docs"
    (docs / "pdf").mkdir(parents=True)
    pdf = PAGE1 + PAGE2 + PAGE3
    (docs / "pdf" / "guide.pdf.txt").write_text(pdf, encoding="utf-8")
    (docs / "notes.md.txt").write_text(NOTES, encoding="utf-8")
    a, b = len(PAGE1), len(PAGE1) + len(PAGE2)
    scope = NOTES.index("## Scope")
    manifest_fixture.write(tmp_path / "ingest", [
        manifest_fixture.record("notes.md", chars=len(NOTES), pages=[],
                                sections=[{"title": "Intro", "level": 1, "start": 0, "end": len(NOTES)},
                                          {"title": "Scope", "level": 2, "start": scope, "end": len(NOTES)}]),
        manifest_fixture.record("pdf/guide.pdf", chars=len(pdf), sections=[],
                                pages=[{"page": 1, "start": 0, "end": a}, {"page": 2, "start": a, "end": b},
                                       {"page": 3, "start": b, "end": len(pdf)}])])

    def ref(text: str, content: str, doc: str | None = None) -> dict:
        start = text.index(content)
        out = {"content": content, "start_index": start, "end_index": start + len(content)}
        return {**out, "corpus_id": doc} if doc else out

    risk = "The authorizing official accepts the residual risk <b>in writing</b>"
    cloud = "Cloud services used by agencies <script>alert(1)</script>."
    rows = [
        {"question": "Who accepts the residual risk?", "references": json.dumps([ref(pdf, risk)]),
         "corpus_id": "pdf/guide.pdf", "id": "q-single", "answer": "The authorizing official.",
         "question_type": "single", "generator": "fake:test", "split": "train"},
        {"question": "Who selects controls for cloud services?",
         "references": json.dumps([ref(pdf, "Security controls are selected by the system owner.", "pdf/guide.pdf"),
                                   ref(NOTES, cloud, "notes.md")]),
         "corpus_id": "pdf/guide.pdf", "id": "q-multi", "answer": "The system owner.", "question_type": "multi",
         "generator": "fake:test", "split": "heldout"},
        {"question": "What is the colour of the auditor's car?", "references": "[]", "corpus_id": "notes.md",
         "id": "q-none", "answer": "", "question_type": "unanswerable", "generator": "fake:test", "split": "train"},
    ]
    testset = tmp_path / "testset" / "testset.csv"
    testset.parent.mkdir()
    with open(testset, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return testset, docs
