"""The claim-support model's training pairs: planned as the judge plans (claims, windows), planted
errors unsupported against every window, faithful claims supported by their best window and
unsupported by a window without their words, twins' copied claims unused, duplicates kept once."""

from __future__ import annotations

import pytest

from lab.data.halueval import JudgedItem
from lab.judge.claim_judge import ClaimLevelJudge
from lab.judge.claim_training import claim_pairs


class WordBudget:
    """A token budget in words: windows of at most ``limit`` words after the claim and question."""

    def __init__(self, limit: int) -> None:
        self.max_tokens = limit

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def reserved_tokens(self, question: str, hypothesis: str) -> int:
        return len(question.split()) + len(hypothesis.split())


CONTEXT = ("Marie Curie was born in Warsaw in 1867. She studied physics in Paris at the Sorbonne. "
           "The river Seine flows through the city of Paris. Bridges cross it in many places today.")
FAITHFUL = "Marie Curie was born in Warsaw in 1867. She later studied physics in Paris."
WRONG = "Marie Curie was born in Krakow in 1867. She later studied physics in Paris."


def _item(answer: str, label: int, spans=None, group: str = "g1") -> JudgedItem:
    return JudgedItem(id=f"{group}-{label}", question="Where was Curie born?", answer=answer, context=CONTEXT,
                      label=label, group=group, line=1, spans=spans)


def _judge(limit: int = 24) -> ClaimLevelJudge:
    return ClaimLevelJudge(WordBudget(limit), name="plan")


def test_a_planted_error_is_unsupported_against_its_best_window_and_its_copied_claims_are_unused():
    wrong_end = WRONG.index(".") + 1
    got = claim_pairs([_item(WRONG, 1, spans=((0, wrong_end),))], _judge())
    assert got.counts["claims_unsupported"] == 1 and got.counts["claims_unused"] == 1
    windows = _judge().plan(_item(WRONG, 1)).__getitem__(1)[0]
    assert len(windows) > 1, "the context must need several windows for this test to mean anything"
    assert got.labels == [1]
    assert got.items[0].context == next(w.text for w in windows if "Warsaw" in w.text)
    assert all(i.answer == WRONG[:wrong_end] for i in got.items)


def test_a_faithful_claim_is_supported_by_its_best_window_and_not_by_a_window_without_its_words():
    got = claim_pairs([_item(FAITHFUL, 0)], _judge())
    assert got.counts["claims_supported"] == 2
    born = [(i.context, y) for i, y in zip(got.items, got.labels, strict=True) if i.answer.startswith("Marie")]
    assert [y for _, y in born] == [0, 1]
    assert "Warsaw" in born[0][0] and "Warsaw" not in born[1][0]


def test_one_window_contexts_give_no_off_window_pair_and_repeats_are_kept_once():
    got = claim_pairs([_item(FAITHFUL, 0), _item(FAITHFUL, 0, group="g2")], _judge(limit=500))
    assert got.counts["pairs_off_window"] == 0
    assert got.labels == [0, 0] and got.counts["duplicates"] == 2


def test_a_hallucinated_answer_without_spans_is_counted_not_guessed():
    got = claim_pairs([_item(WRONG, 1, spans=None)], _judge())
    assert got.items == [] and got.counts["answers_without_spans"] == 1


def test_training_refuses_a_split_with_one_label_on_a_side(tmp_path):
    from lab.errors import DataError
    from lab.judge.claim_training import train_claim_support

    with pytest.raises(DataError, match="one label"):
        train_claim_support([_item(FAITHFUL, 0)], tmp_path / "m")
    with pytest.raises(DataError, match="context"):
        train_claim_support([JudgedItem("a", "q", "an answer", None, 0, "g", 1)], tmp_path / "m")


def test_more_errors_plants_rule_errors_into_the_faithful_answers_with_spans_and_their_base():
    from lab.judge.claim_training import more_errors
    from lab.judge.faithful_sources import Source

    source = Source("s1", "When was Curie born?", (CONTEXT,), ("Pierre Curie was born in 1859 in Paris.",))
    answer = "Marie Curie was born in Warsaw in 1867. She studied physics in Paris with 12 other students."
    faithful = {"id": "s1/faithful", "source_id": "s1", "kind": "faithful", "answer": answer}
    got = more_errors([faithful, {**faithful, "id": "s1/faithful/number", "kind": "number"}], [source],
                      rounds=2, kinds=("number",))
    assert got and all(r["label"] == "hallucinated" and r["base"] == "s1/faithful" for r in got)
    for r in got:
        (span,) = r["spans"]
        assert "12" not in r["answer"][span["start"]:span["end"]] and r["answer"] != answer
    assert more_errors([faithful], [], rounds=2) == []   # an answer whose source is unknown is left alone


def test_a_faithful_claim_whose_words_are_in_no_window_is_not_taught_as_supported():
    filler = FAITHFUL + " Her work changed modern oncology forever."
    got = claim_pairs([_item(filler, 0)], _judge(), min_supported_overlap=0.5)
    assert got.counts["claims_unverified"] == 1 and got.counts["claims_supported"] == 2
    assert not any("oncology" in i.answer for i in got.items)


def test_short_answer_twins_are_a_gold_answer_and_a_same_kind_entity_of_the_same_passages():
    import re
    from pathlib import Path

    from lab.judge.short_answers import short_answer_records

    root = Path(__file__).resolve().parents[1]
    records, counts = short_answer_records(root, n=6, seed=0)
    assert counts["questions_used"] == 6
    by_id = {r["id"]: r for r in records}
    wrong = [r for r in records if r["label"] == "hallucinated"]
    assert len(wrong) * 2 == len(records), "every hallucinated record has one faithful twin"
    for r in wrong:
        twin = by_id[r["base"]]
        span = r["spans"][0]
        planted = r["answer"][span["start"]:span["end"]]
        evidence = "\n".join(r["contexts"])
        assert re.search(r"(?<!\w)" + re.escape(planted) + r"(?!\w)", evidence), "the wrong answer is in the evidence"
        assert twin["label"] == "faithful" and twin["answer"] != r["answer"]
        if r["kind"] == "short_sentence":   # the same sentence but the replaced words
            assert r["answer"][:span["start"]] == twin["answer"][:span["start"]]
            assert r["answer"][span["end"]:] == twin["answer"][len(twin["answer"]) - len(r["answer"]) + span["end"]:]
