"""lab.testset.review: the decisions file, the reviewed set, the counts, and the excerpt the app shows."""

from __future__ import annotations

import csv
import json

import pytest
import review_fixture

from lab.errors import DataError
from lab.ingest.manifest import PageSpan
from lab.ingest.provenance import DocumentMap
from lab.testset import review
from lab.versioned import read_versioned


@pytest.fixture
def testset(tmp_path):
    return review_fixture.make(tmp_path)[0]


def test_decisions_are_recorded_by_id_and_rewritten_atomically(testset):
    assert review.decisions_path(testset) == testset.with_name("testset.review.json")
    assert review.load_decisions(testset).decisions == {}
    review.record_decision(testset, "q-single", "accept", decided_at="2026-01-01T00:00:00+00:00")
    review.record_decision(testset, "q-multi", "reject", reason=" question ambiguous ")
    review.record_decision(testset, "q-multi", "edit", question="Who selects the controls?", answer="The system owner.",
                           reason="clearer")   # re-deciding replaces; the unchanged answer is not stored
    data = read_versioned(review.decisions_path(testset), "lab.testset-review", 1, "x")
    assert data["testset_sha256"] == review.file_sha256(testset)
    assert [d["id"] for d in data["decisions"]] == ["q-multi", "q-single"]
    edit = data["decisions"][0]
    assert edit["decision"] == "edit" and edit["question"] == "Who selects the controls?" and "answer" not in edit
    assert edit["reason"] == "clearer" and edit["decided_at"].endswith("+00:00")
    assert data["decisions"][1] == {"id": "q-single", "decision": "accept", "reason": "",
                                    "decided_at": "2026-01-01T00:00:00+00:00"}
    assert not list(testset.parent.glob(".*.tmp"))
    loaded = review.load_decisions(testset)
    assert set(loaded.decisions) == {"q-single", "q-multi"} and not loaded.stale and not loaded.problems()
    review.clear_decision(testset, "q-single")
    assert set(review.load_decisions(testset).decisions) == {"q-multi"}


def test_bad_decisions_are_refused_with_the_item(testset):
    with pytest.raises(ValueError, match="one of accept, edit, reject"):
        review.record_decision(testset, "q-single", "maybe")
    with pytest.raises(DataError, match="no item with id 'nope'"):
        review.record_decision(testset, "nope", "accept")
    with pytest.raises(ValueError, match="changes neither"):
        review.record_decision(testset, "q-single", "edit", question="Who accepts the residual risk? ")
    with pytest.raises(ValueError, match="cannot be empty"):
        review.record_decision(testset, "q-single", "edit", question="  ")
    with pytest.raises(ValueError, match="goes with an edit"):
        review.record_decision(testset, "q-single", "accept", question="x")
    assert not review.decisions_path(testset).exists()
    review.decisions_path(testset).write_text(json.dumps({"format": "lab.testset-review", "version": 1,
                                                          "testset_sha256": "", "decisions": [{"id": "q-single"}]}))
    with pytest.raises(DataError, match=r"testset\.review\.json: decisions\.0\.decision: Field required"):
        review.load_decisions(testset)
    review.decisions_path(testset).write_text(json.dumps({"format": "lab.testset-review", "version": 2}))
    with pytest.raises(DataError, match="version 2; this code reads version 1"):
        review.load_decisions(testset)


def test_reviewed_rows_drop_rejects_apply_edits_and_say_how(testset):
    assert [r["review"] for r in review.reviewed_rows(testset)] == ["unreviewed"] * 3
    review.record_decision(testset, "q-single", "edit", answer="The AO.")
    review.record_decision(testset, "q-multi", "reject", reason="question ambiguous")
    review.record_decision(testset, "q-none", "accept")
    rows = review.reviewed_rows(testset)
    assert [(r["id"], r["review"]) for r in rows] == [("q-single", "edited"), ("q-none", "accepted")]
    assert rows[0]["answer"] == "The AO." and rows[0]["question"] == "Who accepts the residual risk?"
    assert json.loads(rows[0]["references"])[0]["start_index"] > 0   # the other columns as they were
    out = review.write_reviewed_csv(testset, testset.with_name("reviewed.csv"))
    with open(out, encoding="utf-8", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [r["id"] for r in written] == ["q-single", "q-none"] and written[0]["answer"] == "The AO."
    assert list(written[0])[:3] == ["question", "references", "corpus_id"]   # Chroma's columns first


def test_counts_for_the_report(testset):
    review.record_decision(testset, "q-single", "accept")
    review.record_decision(testset, "q-multi", "reject", reason="question ambiguous")
    counts = review.review_counts(testset)
    assert {k: counts[k] for k in ("items", "accepted", "edited", "rejected", "unreviewed")} == \
        {"items": 3, "accepted": 1, "edited": 0, "rejected": 1, "unreviewed": 1}
    assert counts["by_type"]["multi"] == {"accepted": 0, "edited": 0, "rejected": 1, "unreviewed": 0}
    assert counts["reasons"] == {"accept": {"": 1}, "edit": {}, "reject": {"question ambiguous": 1}}
    assert counts["stale"] is False and counts["orphaned"] == []


def test_decisions_on_another_version_of_the_test_set_are_reported_not_dropped(testset):
    review.record_decision(testset, "q-single", "accept")
    review.record_decision(testset, "q-multi", "reject", reason="duplicate")
    lines = testset.read_text(encoding="utf-8").splitlines(keepends=True)
    testset.write_text("".join(line for line in lines if "q-multi" not in line), encoding="utf-8")   # regenerated
    loaded = review.load_decisions(testset)
    assert loaded.stale and [d.id for d in loaded.orphaned] == ["q-multi"] and set(loaded.decisions) == {"q-single"}
    assert any("q-multi (reject)" in p for p in loaded.problems())
    with pytest.warns(UserWarning, match=r"another version of the test set.*q-multi \(reject\)"):
        rows = review.reviewed_rows(testset)
    assert [(r["id"], r["review"]) for r in rows] == [("q-single", "accepted"), ("q-none", "unreviewed")]
    with pytest.raises(DataError, match="no longer in the test set: q-multi"):
        review.reviewed_rows(testset, on_problem="error")
    counts = review.review_counts(testset)
    assert counts["stale"] and counts["orphaned"] == ["q-multi"] and counts["rejected"] == 0
    review.record_decision(testset, "q-none", "accept")   # a new decision: the file follows the new test set ...
    data = read_versioned(review.decisions_path(testset), "lab.testset-review", 1, "x")
    assert data["testset_sha256"] == review.file_sha256(testset)
    assert [d["id"] for d in data["decisions"]] == ["q-multi", "q-none", "q-single"]   # ... and keeps the orphan
    assert review.load_decisions(testset).orphaned[0].id == "q-multi"


def test_the_excerpt_is_shown_in_its_document_with_its_page_and_escaped(testset, tmp_path):
    corpus = tmp_path / "ingest" / "docs"
    maps = review.document_maps(corpus)
    rows = {r["id"]: r for r in review.read_testset(testset)}
    [single] = review.item_excerpts(rows["q-single"], corpus, maps)
    assert single.location == "page 2" and single.matches
    assert single.before.endswith(review_fixture.PAGE1) and single.excerpt.startswith("The authorizing official")
    assert single.before + single.excerpt + single.after == (review_fixture.PAGE1 + review_fixture.PAGE2
                                                             + review_fixture.PAGE3)[single.window_start:single.window_end]
    page = single.html()
    assert "<b>in writing</b>" not in page and "&lt;b&gt;in writing&lt;/b&gt;</mark> &amp; signs" in page
    assert '<mark style="background: #ffe066">The authorizing official' in page
    pdf, notes = review.item_excerpts(rows["q-multi"], corpus, maps)
    assert pdf.location == "page 1" and notes.location == "section Intro > Scope" and notes.doc_id == "notes.md"
    assert "<script>" not in review.item_html(rows["q-multi"], [pdf, notes])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in notes.html()
    assert review.item_excerpts(rows["q-none"], corpus, maps) == []
    assert "unanswerable" in review.item_html(rows["q-none"], [])
    # no manifest: no location; a reference that is not the text at its offsets is flagged
    assert review.item_excerpts(rows["q-single"], corpus, {})[0].location == ""
    text = "x" * 2000 + " the excerpt " + "y " * 1000
    window = review.excerpt_window(text, 2001, 2012, content="other text", context=100,
                                   doc=DocumentMap("t", "t", pages=(PageSpan(page=1, start=0, end=2005),
                                                                    PageSpan(page=2, start=2005, end=len(text)))))
    assert window.location == "pages 1-2" and not window.matches and window.excerpt == "the excerpt"
    assert len(window.after) <= 100 and window.html().endswith(" ...</div>")
    assert window.html().count("... ") >= 1 and window.window_start > 0
    with pytest.raises(DataError, match=r"q-none: references\[0\] is not"):
        review.item_excerpts({**rows["q-none"], "references": '[{"content": "x"}]'}, corpus, maps)
    with pytest.raises(DataError, match="outside the text"):
        review.excerpt_window("abc", 2, 9)


def test_the_excerpt_location_comes_from_the_manifest_read_by_the_typed_reader(testset, tmp_path):
    """The app's pages and sections are provenance's lookup (DocumentMap.locate): the first and last
    page, or every section holding the excerpt's start; no manifest: none; a malformed record is an
    error naming the file, the key and the document (it was skipped before)."""
    corpus = tmp_path / "ingest" / "docs"
    maps = review.document_maps(corpus)
    assert sorted(maps) == ["notes.md", "pdf/guide.pdf"]
    pdf = (corpus / "pdf" / "guide.pdf.txt").read_text(encoding="utf-8")
    at = len(review_fixture.PAGE1) - 5
    across = review.excerpt_window(pdf, at, len(pdf) - 1, doc=maps["pdf/guide.pdf"])
    assert across.pages == (1, 3) and across.location == "pages 1-3"
    intro = review.excerpt_window(review_fixture.NOTES, 0, 5, doc=maps["notes.md"])
    assert intro.sections == ("Intro",) and intro.location == "section Intro"
    manifest = tmp_path / "ingest" / "manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["documents"][1]["pages"][1]["start"] = "10"
    manifest.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match=r"manifest\.json: documents\.1\.pages\.1\.start: .*'pdf/guide\.pdf'"):
        review.document_maps(corpus)
    manifest.unlink()
    assert review.document_maps(corpus) == {}


def test_a_test_set_without_ids_or_with_repeated_ids_is_refused(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("question,references,corpus_id\nq,[],d\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column\(s\) \['id', 'answer', 'question_type'\] missing"):
        review.read_testset(bad)
    bad.write_text("question,references,corpus_id,id,answer,question_type\nq,[],d,a,x,single\nq2,[],d,a,y,single\n",
                   encoding="utf-8")
    with pytest.raises(DataError, match="id 'a' at line 3 repeats line 2"):
        review.read_testset(bad)
