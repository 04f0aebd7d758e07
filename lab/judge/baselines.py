"""The baselines every judge is shown beside.

``majority``  the majority class of the training labels, always (kappa 0 by construction).
``lexical``   lexical support: the share of the answer's content words (``\\w+`` tokens, lower-cased,
              scikit-learn's English stop words removed) that occur in the context; the score of the
              positive class is 1 - support, and the threshold is chosen on TRAINING items
              (:func:`lab.metrics.agreement.best_threshold`, kappa). Needs grounding text: on items
              without a context it gives no verdict (and calibration reports it as not applicable).
``length``    the answer's length in words, thresholded on TRAINING items: not a judge anyone should
              use, but the shortcut a judge can learn instead of faithfulness (HaluEval QA's right
              answers are short spans, its hallucinated ones sentences); a judge that does not beat
              it on the length-balanced diagnostic set (:mod:`lab.judge.counterfactual`) has learned it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from lab.errors import LabError
from lab.judge.base import JUDGES, JudgeInput, Judgment
from lab.metrics.agreement import best_threshold

_WORD = re.compile(r"\w+", re.UNICODE)


def content_words(text: str) -> set[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {w for w in _WORD.findall(text.lower()) if w not in ENGLISH_STOP_WORDS}


# A sentence boundary: end punctuation, space, then a capital, digit, quote or bracket. A regex, not
# spaCy's parser: the split has to be the same at training and judging time, cheap (it runs on every
# judged item), and HaluEval's and SQuAD's passages are edited prose where this rule is enough.
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (see ``_SENTENCE``), empty ones dropped."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def missing_from_best_sentence(answer: str, context: str) -> list[str]:
    """The answer's content words absent from the context sentence that holds most of them.

    An answer stitched from words of different sentences (a wrong entity next to the question's
    words, the usual hallucination that whole-context support misses) leaves some out; a span or a
    sentence taken from the context leaves none."""
    words = content_words(answer)
    best = max((content_words(s) for s in sentences(context)), key=lambda c: len(words & c), default=set())
    return sorted(words - best)


def lexical_support(answer: str, context: str) -> float:
    """Share of the answer's content words found in the context (1.0 for an answer with none)."""
    words = content_words(answer)
    if not words:
        return 1.0
    return len(words & content_words(context)) / len(words)


@JUDGES.register("majority")
class MajorityJudge:
    """Always the majority class of the labels it was fitted on."""

    kind = "majority"
    rubric_id = "-"
    task = "any"

    def __init__(self, name: str = "majority") -> None:
        self.name = name
        self.verdict: int | None = None
        self.rate: float | None = None

    def fit(self, items: Sequence[JudgeInput], labels: Sequence[int]) -> MajorityJudge:
        if not labels:
            raise LabError("majority baseline: no training labels")
        self.rate = sum(labels) / len(labels)
        self.verdict = int(self.rate > 0.5)
        return self

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        if self.verdict is None:
            raise LabError("majority baseline: call fit() on training labels first")
        return [Judgment(self.verdict, self.rate, str(self.verdict), "", self.name, self.rubric_id) for _ in items]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "verdict": self.verdict, "train_positive_rate": self.rate}


class _ThresholdRule:
    """A one-number rule: ``score(item) >= threshold`` means positive; the threshold is fitted on
    training labels (kappa-optimal). Items the rule cannot score get no verdict (``n/a``)."""

    kind = "rule"
    rubric_id = "-"
    task = "any"
    not_applicable = "n/a"

    def __init__(self, name: str | None = None, threshold: float | None = None) -> None:
        self.name = name or self.kind   # a rule is registered, and named by default, by its kind
        self.threshold = threshold

    @staticmethod
    def score(item: JudgeInput) -> float | None:
        raise NotImplementedError

    def fit(self, items: Sequence[JudgeInput], labels: Sequence[int]) -> Any:
        pairs = [(s, y) for s, y in zip(map(self.score, items), labels, strict=True) if s is not None]
        if not pairs:
            raise LabError(f"{self.kind} baseline: no training item it can score ({self.not_applicable})")
        self.threshold = best_threshold([y for _, y in pairs], [s for s, _ in pairs])
        return self

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        if self.threshold is None:
            raise LabError(f"{self.kind} baseline: call fit() on training items first (or give a threshold)")
        out = []
        for item in items:
            s = self.score(item)
            if s is None:
                out.append(Judgment(None, None, None, "", self.name, self.rubric_id, error=self.not_applicable,
                                    error_kind="n/a"))
            else:
                out.append(Judgment(int(s >= self.threshold), s, None, self.raw(s), self.name, self.rubric_id))
        return out

    def raw(self, score: float) -> str:
        return f"{score:g}"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "threshold": self.threshold}


@JUDGES.register("length")
class LengthJudge(_ThresholdRule):
    """The answer's length in words, thresholded (see the module docstring): the shortcut to beat."""

    kind = "length"

    @staticmethod
    def score(item: JudgeInput) -> float | None:
        return float(len(item.answer.split()))


@JUDGES.register("lexical")
class LexicalJudge(_ThresholdRule):
    """Lexical support of the answer by the context, thresholded (see the module docstring)."""

    kind = "lexical"
    task = "grounded"
    not_applicable = "no context: lexical support needs grounding text"

    @staticmethod
    def score(item: JudgeInput) -> float | None:
        if not item.context:
            return None
        return 1.0 - lexical_support(item.answer, item.context)

    def raw(self, score: float) -> str:
        return f"{1 - score:.4f}"
