"""The filters a generated question must pass, each one counted.

A candidate is dropped by the FIRST filter it fails, in the order of :data:`FILTERS`, so the
counts add up to the candidates dropped:

``unparseable``           the reply (and its one retry) did not give a question (and answer)
``question_length``       fewer than ``min_question_words`` or more than ``max_question_words`` words
``answer_length``         an answer of more than ``max_answer_words`` words
``excerpt_not_verbatim``  a reference's content is not the document's text at its offsets (never,
                          by construction; checked anyway, as every reader does)
``copies_excerpt``        :func:`lab.testset.text.copy_ratio` above ``max_copy_ratio`` (fitted on
                          human SQuAD questions: :func:`fit_copy_threshold`)
``off_topic``             under ``min_question_support`` of the question's content words are in its
                          excerpt(s) (unanswerable: in its source passage, at half that bar), or it uses
                          a word of the prompt's worked example that its excerpt lacks (a copied example)
``not_standalone``        the question leans on its excerpt ("this", "these", "the passage", "our", "we"):
                          asked without the excerpt, as retrieval asks it, it has no clear meaning
``multi_not_both``        a multi-passage question (with its answer) shares no content word with one
                          of its two passages beyond those the passages share
``not_grounded``          the grounded judge says the excerpt(s) do not support the answer
``judge_failed``          the judge gave no verdict (its error is kept): counted, never a silent pass
``answered_by_corpus``    unanswerable: one corpus sentence holds ``max_unanswerable_support`` or more
                          of the question's content words, compared by their first 6 letters (the
                          corpus may answer it)
``near_duplicate``        word-set Jaccard with an earlier kept question at or above ``near_duplicate``

The grounded judge is the judge floor's: ``lexical`` (:class:`lab.judge.baselines.LexicalJudge`, the
share of the answer's content words found in the excerpt against ``min_answer_support``; no model) or
a trained faithfulness cross-encoder's folder (:class:`lab.judge.trained.CrossEncoderJudge`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config import TestsetFilters
from lab.errors import ConfigError
from lab.judge.base import JudgeInput, Judgment
from lab.testset.prompts import EXAMPLE_WORDS
from lab.testset.text import content_words, copy_ratio, jaccard, support, words

FILTERS = ("unparseable", "question_length", "answer_length", "excerpt_not_verbatim", "copies_excerpt",
           "off_topic", "not_standalone", "multi_not_both", "not_grounded", "judge_failed", "answered_by_corpus",
           "near_duplicate")

#: Words that make a question lean on the excerpt it was written from (measured: Qwen2.5-Coder-0.5B's
#: "What is the purpose of this use case?", "What are the main goals of our efforts?").
DEICTIC = frozenset({"this", "these", "passage", "excerpt", "paragraph", "above", "our", "we", "us"})


def prefilter(kind: str, question: str, answer: str, passages: Sequence[Any], documents: Mapping[str, str],
              limits: TestsetFilters) -> str | None:
    """The first filter before the judge that the candidate fails, or None.

    ``passages`` are :class:`lab.testset.excerpts.Passage` s (the question's references; for an
    unanswerable question its source passage)."""
    n_q = len(words(question))
    if n_q < limits.min_question_words or n_q > limits.max_question_words:
        return "question_length"
    if kind != "unanswerable" and len(words(answer)) > limits.max_answer_words:
        return "answer_length"
    for p in passages:
        if documents.get(p.doc_id, "")[p.start:p.end] != p.text:
            return "excerpt_not_verbatim"
    if max(copy_ratio(question, p.text) for p in passages) > limits.max_copy_ratio:
        return "copies_excerpt"
    joined = "\n\n".join(p.text for p in passages)
    bar = limits.min_question_support / (2 if kind == "unanswerable" else 1)
    if support(question, joined) < bar or (content_words(question) & EXAMPLE_WORDS) - content_words(joined):
        return "off_topic"
    if DEICTIC & set(words(question)):
        return "not_standalone"
    if kind == "multi":
        a, b = (content_words(p.text) for p in passages)
        asked = content_words(f"{question} {answer}")
        if not (asked & (a - b)) or not (asked & (b - a)):
            return "multi_not_both"
    return None


class GroundedJudge:
    """The judge of "does the excerpt support this answer": ``lexical`` or a trained judge's folder."""

    def __init__(self, spec: str, limits: TestsetFilters, *, root: Path | None = None) -> None:
        self.spec = spec
        if spec == "lexical":
            from lab.judge.baselines import LexicalJudge

            # verdict 1 (unsupported) when 1 - support >= threshold, i.e. support below the bar
            self.judge_: Any = LexicalJudge(name="lexical-support",
                                            threshold=1.0 - limits.min_answer_support + 1e-9)
        else:
            from lab.judge.trained import CrossEncoderJudge

            folder = Path(spec) if root is None else (root / spec if not Path(spec).is_absolute() else Path(spec))
            if not (folder / "meta.json").is_file():
                raise ConfigError(f"grounded_judge {spec!r}: not 'lexical' and not a trained judge's folder "
                                  f"(no meta.json in {folder}); `dvc repro judge_eval` trains one")
            self.judge_ = CrossEncoderJudge(folder)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.judge_.describe()}

    def judge(self, items: Sequence[JudgeInput]) -> list[Judgment]:
        return self.judge_.judge(list(items)) if items else []


def _stems(text: str) -> frozenset[str]:
    """Content words cut to their first 6 letters: a crude stem, so "transformational" meets
    "transformative" and "assessor" "assessment" (erring towards "the corpus may answer it")."""
    return frozenset(w[:6] for w in content_words(text))


class CorpusSentences:
    """Every sentence of the corpus as a set of content-word stems (:func:`_stems`), with an index
    from stem to sentences: the share of a question's stems that one sentence holds (:meth:`best_support`)."""

    def __init__(self, documents: Mapping[str, str]) -> None:
        from lab.chunking.sentence import sentence_spans

        self.sets: list[frozenset[str]] = []
        self.index: dict[str, list[int]] = {}
        for text in documents.values():
            for s, e in sentence_spans(text):
                ws = _stems(text[s:e])
                if not ws:
                    continue
                for w in ws:
                    self.index.setdefault(w, []).append(len(self.sets))
                self.sets.append(ws)

    def best_support(self, question: str) -> float:
        """Max over sentences of |question stems ∩ sentence| / |question stems| (0 without content words)."""
        q = _stems(question)
        if not q:
            return 0.0
        counts: dict[int, int] = {}
        for w in q:
            for i in self.index.get(w, ()):
                counts[i] = counts.get(i, 0) + 1
        return max(counts.values(), default=0) / len(q)


def is_near_duplicate(question: str, kept: Sequence[frozenset[str]], threshold: float) -> bool:
    mine = frozenset(words(question))
    return any(jaccard(mine, other) >= threshold for other in kept)


@dataclass(frozen=True)
class CopyFit:
    """:func:`fit_copy_threshold`'s result."""

    threshold: float
    quantile: float
    n_questions: int
    n_articles: int
    excluded_titles: tuple[str, ...]
    quantiles: dict[str, float]


def fit_copy_threshold(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, *, exclude_titles: Sequence[str],
                       quantile: float = 0.95) -> CopyFit:
    """The ``max_copy_ratio`` that human questions stay under: the ``quantile`` of
    :func:`lab.testset.text.copy_ratio` of SQuAD v1.1 questions against the sentence of their
    paragraph that holds their first answer's first occurrence (a generated question's excerpt is
    one to a few sentences), over the articles not in ``exclude_titles`` (those a study evaluates
    on: fitting there would choose the filter on the data it is then measured with). Questions whose
    answer is not found verbatim are left out."""
    import numpy as np

    from lab.chunking.sentence import sentence_spans
    from lab.data.squad import squad_questions

    excluded = {t.replace(" ", "_") for t in exclude_titles}
    paragraphs, questions = squad_questions(paragraphs_jsonl, qa_jsonl, None)
    ratios: list[float] = []
    titles: set[str] = set()
    spans_of: dict[str, list[tuple[int, int]]] = {}
    for q in questions:
        para = paragraphs[q.doc_id or ""]
        if para.title in excluded:
            continue
        text = para.text
        at = next((text.find(a) for a in q.answers if a.strip() and text.find(a) >= 0), -1)
        if at < 0:
            continue
        spans = spans_of.setdefault(para.id, sentence_spans(text))
        sent = next(((s, e) for s, e in spans if s <= at < e), None)
        if sent is None:
            continue
        ratios.append(copy_ratio(q.question, text[sent[0]:sent[1]]))
        titles.add(para.title)
    arr = np.asarray(ratios)
    qs = {f"q{int(p * 100)}": round(float(np.quantile(arr, p)), 4) for p in (0.5, 0.75, 0.9, 0.95, 0.99)}
    return CopyFit(round(float(np.quantile(arr, quantile)), 4), quantile, len(ratios), len(titles),
                   tuple(sorted(excluded)), qs)
