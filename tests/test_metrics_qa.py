"""lab.metrics.qa against the official SQuAD v1.1 evaluation (evaluate-v1.1.py), transcribed below.

Hand-computed edge cases, a property test on adversarial strings, and ~200 real SQuAD dev
questions with synthetic predictions (exact, reformatted, truncated, padded, wrong, empty), all to 1e-12.
"""

from __future__ import annotations

import json
import re
import string
import sys
from collections import Counter

import numpy as np
import pytest
from conftest import DATA
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.errors import RegistryError
from lab.metrics.qa import (
    QA_METRICS,
    aggregate,
    answer_in_context,
    exact_match,
    normalize_answer,
    score_predictions,
    token_f1,
)

QA = DATA / "squad_v1.1_dev" / "dev-v1.1.qa.jsonl"
PARAGRAPHS = DATA / "squad_v1.1_dev" / "dev-v1.1.paragraphs.jsonl"


# --------------------------------------------------------------------------- the official script
# Transcription of the formulas of SQuAD v1.1's evaluate-v1.1.py (Rajpurkar et al.), unchanged.


def official_normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def official_f1_score(prediction, ground_truth):
    prediction_tokens = official_normalize_answer(prediction).split()
    ground_truth_tokens = official_normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def official_exact_match_score(prediction, ground_truth):
    return (official_normalize_answer(prediction) == official_normalize_answer(ground_truth))


def official_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def official_evaluate(references, predictions):
    """evaluate() of the script on flat {qid: answers}; returns percentages like the script."""
    f1 = exact_match = total = 0
    for qid, ground_truths in references.items():
        total += 1
        if qid not in predictions:
            print('Unanswered question ' + qid + ' will receive score 0.', file=sys.stderr)
            continue
        prediction = predictions[qid]
        exact_match += official_metric_max_over_ground_truths(official_exact_match_score, prediction, ground_truths)
        f1 += official_metric_max_over_ground_truths(official_f1_score, prediction, ground_truths)
    return {'exact_match': 100.0 * exact_match / total, 'f1': 100.0 * f1 / total}


def official(prediction, answers):
    return (float(official_metric_max_over_ground_truths(official_exact_match_score, prediction, answers)),
            float(official_metric_max_over_ground_truths(official_f1_score, prediction, answers)))


# --------------------------------------------------------------------------- hand-computed cases


@pytest.mark.parametrize("text, expected", [
    ("The  Denver Broncos!", "denver broncos"),
    ("a an the", ""),
    ("...", ""),
    ("", ""),
    ("Theater of the Absurd", "theater of absurd"),   # articles only as whole words
    ("the-end", "theend"),                             # punctuation goes first: no article left
    ("A.B.C.", "abc"),
    ("  U.S.\tdollars\n", "us dollars"),
    ("Zürich–Bern “quoted”", "zürich–bern “quoted”"),  # only ASCII punctuation is removed
    ("THE Answer", "answer"),
])
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected == official_normalize_answer(text)


@pytest.mark.parametrize("prediction, answers, em, f1", [
    ("Denver Broncos", ["Denver Broncos"], 1.0, 1.0),
    ("denver broncos.", ["The Denver Broncos"], 1.0, 1.0),             # case, article, punctuation
    ("", ["Denver Broncos"], 0.0, 0.0),                                  # empty prediction
    ("the a .", ["Denver Broncos"], 0.0, 0.0),                           # articles/punctuation only
    ("", ["the"], 1.0, 0.0),              # v1.1 quirk: both normalise to "" -> EM 1, F1 0 (no tokens)
    ("Denver Broncos won", ["Broncos", "the Denver Broncos"], 0.0, 0.8),  # max: 2/3 precision, recall 1
    ("Denver Broncos won", ["Broncos"], 0.0, 0.5),                      # 1/3 precision, recall 1
    ("the the cat cat cat", ["cat"], 0.0, 0.5),                         # bag: one common token of 3
    ("cat cat", ["cat cat dog"], 0.0, 0.8),                             # p 1, r 2/3
    ("Carolina Panthers", ["Denver Broncos", "Broncos"], 0.0, 0.0),
    ("Broncos", ["Denver Broncos", "Broncos"], 1.0, 1.0),               # any answer may match
])
def test_hand_cases(prediction, answers, em, f1):
    assert exact_match(prediction, answers) == em
    assert token_f1(prediction, answers) == pytest.approx(f1, abs=1e-12)
    assert official(prediction, answers) == pytest.approx((em, f1), abs=1e-12)
    assert isinstance(exact_match(prediction, answers), float) and isinstance(token_f1(prediction, answers), float)


def test_answers_are_checked():
    with pytest.raises(ValueError, match="no accepted answer"):
        exact_match("x", [])
    with pytest.raises(ValueError, match="no accepted answer"):
        token_f1("x", ())
    with pytest.raises(TypeError, match="one str"):
        token_f1("x", "x")
    with pytest.raises(TypeError, match="one str"):
        answer_in_context(["x"], "x is here")


@pytest.mark.parametrize("answers, contexts, expected", [
    (["Denver Broncos"], ["In 2016 the denver broncos, won."], 1.0),
    (["Carolina", "Denver Broncos"], ["nothing", "THE DENVER BRONCOS"], 1.0),   # any answer, any context
    (["3"], ["It began in 1973."], 0.0),               # token boundaries: no match inside a number
    (["1973"], ["It began in 1973."], 1.0),
    (["U.S."], ["U.S.-based firms"], 0.0),             # normalised context is "usbased firms"
    (["$12"], ["nearly $12 globally"], 1.0),
    (["the"], ["the the the"], 0.0),                   # normalises to "": never found
    (["Denver"], [], 0.0),
])
def test_answer_in_context(answers, contexts, expected):
    assert answer_in_context(answers, contexts) == expected


# --------------------------------------------------------------------------- against the script


_ALPHABET = st.sampled_from(["a", "an", "the", "The", "THE", "x", "y", "cat", "12", ".", ",", "-", "'", "\"",
                             "–", "é", "É", "ß", " ", "  ", "\t", "\n", "$", "(", ")", "theater", "A."])
_TEXT = st.lists(_ALPHABET, max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(prediction=_TEXT, answers=st.lists(_TEXT, min_size=1, max_size=4))
def test_matches_official_on_adversarial_strings(prediction, answers):
    assert normalize_answer(prediction) == official_normalize_answer(prediction)
    em, f1 = official(prediction, answers)
    assert exact_match(prediction, answers) == em
    assert abs(token_f1(prediction, answers) - f1) <= 1e-12


def _real_pairs(n: int = 200) -> list[dict]:
    """Every k-th question of SQuAD v1.1 dev: ~n questions spread over all 48 articles."""
    rows = [json.loads(line) for line in QA.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:: len(rows) // n][:n]


def _synthetic_predictions(rows: list[dict]) -> dict[str, list[str]]:
    """Per question: the first answer, the last one reformatted, truncated, padded, another
    question's answer (wrong), an empty string and a duplicated-token answer."""
    out = {}
    for i, r in enumerate(rows):
        first, last = r["answers"][0], r["answers"][-1]
        words = first.split()
        other = rows[(i + 7) % len(rows)]["answers"][0]
        out[r["id"]] = [
            first,
            f'"{last.upper()}."',
            " ".join(words[: max(1, len(words) // 2)]),
            f"The answer is {first}, I think",
            other,
            "",
            f"{first} {first} the",
        ]
    return out


def test_matches_official_on_real_squad_dev():
    rows = _real_pairs()
    assert len(rows) == 200
    preds = _synthetic_predictions(rows)
    n_cases, partial = 0, 0
    for r in rows:
        for p in preds[r["id"]]:
            em, f1 = official(p, r["answers"])
            assert exact_match(p, r["answers"]) == em, (p, r["answers"])
            assert abs(token_f1(p, r["answers"]) - f1) <= 1e-12, (p, r["answers"])
            n_cases += 1
            partial += 0 < f1 < 1
    assert n_cases == 1400
    assert partial > 200  # the set exercises fractional F1, not only 0/1


@pytest.mark.parametrize("variant", range(7))
def test_score_predictions_equals_official_evaluate(variant):
    rows = _real_pairs()
    refs = {r["id"]: r["answers"] for r in rows}
    preds = {q: ps[variant] for q, ps in _synthetic_predictions(rows).items()}
    df = score_predictions(preds, refs)
    want = official_evaluate(refs, preds)
    assert list(df.index) == list(refs)
    assert list(df.columns) == ["exact_match", "f1"]
    assert abs(100 * df.attrs["means"]["exact_match"] - want["exact_match"]) <= 1e-9
    assert abs(100 * df.attrs["means"]["f1"] - want["f1"]) <= 1e-9
    assert df.attrs["n"] == 200 and df.attrs["n_missing"] == 0 and df.attrs["n_extra"] == 0


def test_first_answer_is_in_its_paragraph():
    """SQuAD answers are spans of their paragraph, so answer_in_context of the paragraph is ~1."""
    paragraphs = {}
    for line in PARAGRAPHS.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        paragraphs[rec["paragraph_id"]] = rec["text"]
    rows = _real_pairs()
    rate = np.mean([answer_in_context(r["answers"], [paragraphs[r["paragraph_id"]]]) for r in rows])
    assert rate >= 0.99


# --------------------------------------------------------------------------- registry and frames


def test_registry_declares_direction_and_aggregation():
    assert QA_METRICS.names() == ["answer_in_context", "exact_match", "f1"]
    for name in QA_METRICS.names():
        m = QA_METRICS.get(name)
        assert m.higher_is_better is True and m.aggregation == "mean" and m.name == name
    assert QA_METRICS.get("answer_in_context").compute(["the Denver Broncos won"], ["Denver Broncos"]) == 1.0
    with pytest.raises(RegistryError, match="Unknown QA metric 'bleu'. Available: answer_in_context, exact_match, f1"):
        QA_METRICS.get("bleu")


def test_score_predictions_missing_extra_and_contexts(caplog):
    refs = {"q1": ["Denver Broncos"], "q2": ["1973", "October 1973"], "q3": ["Paris"]}
    preds = {"q1": "the Denver Broncos.", "q2": "October", "q9": "stray"}
    ctx = {"q1": ["Broncos beat Panthers"], "q2": ["It began in October 1973."]}
    with caplog.at_level("WARNING", logger="lab.metrics.qa"):
        df = score_predictions(preds, refs, contexts=ctx)
    assert "1 of 3 questions have no prediction" in caplog.text
    assert list(df.columns) == ["exact_match", "f1", "answer_in_context"]
    assert df.index.name == "query_id" and list(df.index) == ["q1", "q2", "q3"]
    assert df.loc["q1"].tolist() == [1.0, 1.0, 0.0]
    assert df.loc["q2", "exact_match"] == 0.0 and df.loc["q2", "f1"] == pytest.approx(2 / 3)
    assert df.loc["q3"].tolist() == [0.0, 0.0, 0.0]      # no prediction, no contexts: 0, counted
    assert df.loc["q2", "answer_in_context"] == 1.0
    assert df.attrs["n_missing"] == 1 and df.attrs["n_extra"] == 1 and df.attrs["n"] == 3
    assert df.attrs["means"] == aggregate(df)
    assert aggregate(df)["f1"] == pytest.approx((1 + 2 / 3) / 3)


def test_score_predictions_errors():
    with pytest.raises(ValueError, match="need contexts"):
        score_predictions({"q": "x"}, {"q": ["x"]}, metrics=["answer_in_context"])
    with pytest.raises(ValueError, match="no reference"):
        score_predictions({}, {})
    with pytest.raises(ValueError, match="no accepted answer"):
        score_predictions({"q": "x"}, {"q": []})
    with pytest.raises(RegistryError, match="Available"):
        score_predictions({"q": "x"}, {"q": ["x"]}, metrics=["rouge"])
    df = score_predictions({"q": "x"}, {"q": ["x"]}, metrics=["f1"])
    assert list(df.columns) == ["f1"]
