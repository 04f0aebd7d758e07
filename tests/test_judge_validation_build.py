"""benchmarks/judge_validation_build.py: two blind reviews per answer merged (agreement reported, an
adjudication deciding where they differ, undecided answers named, not guessed), reviewed labels
replacing construction labels, spans at the reviewers' exact substrings."""

from __future__ import annotations

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def build():
    return load_script("benchmarks/judge_validation_build.py")


def _rev(rid, who, label, parts=()):
    return {"id": rid, "reviewer": who, "reviewer_label": label, "unsupported": list(parts), "note": ""}


RECORDS = [
    {"id": "s1/faithful", "source_id": "s1", "kind": "faithful", "question": "Q?", "contexts": ["Paris is in France."],
     "answer": "Paris is in France. It has ten million bridges.", "label": "faithful", "spans": []},
    {"id": "s1/faithful/number", "source_id": "s1", "kind": "number", "question": "Q?",
     "contexts": ["Paris is in France."], "answer": "Paris is in Spain.", "label": "hallucinated",
     "spans": [{"start": 12, "end": 17}], "base": "s1/faithful"},
    {"id": "s2/faithful", "source_id": "s2", "kind": "faithful", "question": "Q?", "contexts": ["A b."],
     "answer": "A b.", "label": "faithful", "spans": []},
]


def test_agreeing_reviews_replace_the_construction_label_and_become_spans(build):
    reviews = [_rev("s1/faithful", "A", "hallucinated", ["It has ten million bridges."]),
               _rev("s1/faithful", "B", "hallucinated", ["ten million bridges"]),
               _rev("s1/faithful/number", "A", "hallucinated", ["Spain"]),
               _rev("s1/faithful/number", "B", "hallucinated", ["Spain"])]
    out, summary = build.build(RECORDS, [], {}, reviews)
    first = next(r for r in out if r["id"] == "s1/faithful")
    assert first["label"] == "hallucinated" and first["construction_label"] == "faithful"
    assert first["spans"] == [{"start": 20, "end": 47}]   # the two parts overlap: merged
    assert summary["construction_vs_review"] == {"n": 2, "agree": 1, "by_kind": {
        "faithful": {"agree": 0, "disagree": 1}, "number": {"agree": 1, "disagree": 0}}}
    assert summary["reviewers"]["raw_agreement"] == 1.0 and summary["reviewers"]["double_reviewed"] == 2


def test_a_disagreement_is_decided_by_an_adjudication_or_left_out_and_named(build):
    reviews = [_rev("s1/faithful", "A", "hallucinated", ["ten million bridges"]),
               _rev("s1/faithful", "B", "faithful"),
               _rev("s2/faithful", "A", "faithful"), _rev("s2/faithful", "B", "hallucinated", ["A b."])]
    out, summary = build.build(RECORDS, [], {}, reviews)
    assert [r["id"] for r in out] == []
    assert summary["reviewers"]["unresolved"] == ["s1/faithful", "s2/faithful"]
    assert summary["reviewers"]["raw_agreement"] == 0.0
    out, _ = build.build(RECORDS, [], {}, reviews + [_rev("s1/faithful", "adjudication", "hallucinated",
                                                          ["ten million bridges"])])
    assert [(r["id"], r["label"]) for r in out] == [("s1/faithful", "hallucinated")]


def test_a_part_not_in_the_answer_or_an_unknown_label_is_named(build):
    from lab.errors import DataError

    with pytest.raises(DataError, match="s1/faithful/number.*not in the answer"):
        build.build(RECORDS, [], {}, [_rev("s1/faithful/number", "A", "hallucinated", ["Madrid"])])
    with pytest.raises(DataError, match="reviewer_label must be"):
        build.build(RECORDS, [], {}, [_rev("s2/faithful", "A", "maybe")])
