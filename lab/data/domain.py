"""The domain QA task: a few SQuAD v1.1 articles as a domain, questions split into train and held-out.

A *domain* is a few SQuAD v1.1 dev articles. Their questions are split into ``train`` (for
few-shot examples and fine-tuning) and ``heldout`` (for evaluation) on the SAME articles, so
a model may learn the domain's facts from train questions and be asked about them in held-out
ones: a paragraph's questions may fall on both sides. A held-out question never appears in train,
by id or by its normalised text (:func:`lab.metrics.qa.normalize_answer`): train questions whose
text repeats a held-out one are moved out of train and counted.

A domain may also be your own documents and a test set generated over them
(:func:`build_testset_task`): train and held-out are the test set's own ``split`` column, capped and
kept free of shared question text by the same rule.

The prompts that ask these questions are in :mod:`lab.generate.domain_qa_prompt`; the RAG corpus of the
domain's articles is :func:`lab.retrieval.sets.squad_corpus` (a test set's documents:
:func:`lab.retrieval.sets.documents_corpus`; :func:`lab.retrieval.sets.rag_corpus` picks by
:attr:`DomainTask.corpus_kind`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.qa import TestsetItem, check_testset_references
from lab.data.split import hash_order
from lab.data.squad import squad_questions
from lab.errors import DataError
from lab.metrics.qa import normalize_answer


@dataclass(frozen=True)
class QAExample:
    """One SQuAD question; ``title`` as in the file (underscores), ``context`` its paragraph's text."""

    id: str
    question: str
    answers: tuple[str, ...]
    paragraph_id: str
    title: str
    context: str


def ids_hash(examples: Sequence[QAExample]) -> str:
    """12 hex digits naming a question set (its ids in order): tag results with the eval set's."""
    return hashlib.sha256("\n".join(e.id for e in examples).encode()).hexdigest()[:12]


@dataclass
class DomainTask:
    """Train and held-out questions of the same articles, and those articles' paragraphs.

    Attributes
    ----------
    titles:
        The articles, as in the file (underscores).
    train, heldout:
        Disjoint by id and by normalised question text.
    paragraphs:
        Paragraph id -> ``{"title", "text"}`` for every paragraph of the articles (file order): the
        retrieval corpus before chunking (a test set task: every document of its corpus folder).
    seed:
        Seed of the split.
    counts:
        ``questions_available`` (of the articles, with an answer), ``train_duplicates_moved``
        (train questions left out because their text repeats a held-out one),
        ``questions_without_answer`` (skipped). A test set task adds its own (:func:`build_testset_task`).
    corpus_kind:
        How :func:`lab.retrieval.sets.rag_corpus` turns ``paragraphs`` into passages: ``squad``
        (paragraphs joined into articles) or ``documents`` (each document alone).
    unanswerable:
        A test set's held-out ``unanswerable`` questions (no answer, ``answers == ()``): kept out of the
        QA arms' scores, here for a refusal measure.
    """

    titles: list[str]
    train: list[QAExample]
    heldout: list[QAExample]
    paragraphs: dict[str, dict]
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    corpus_kind: str = "squad"
    unanswerable: list[QAExample] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        """Sizes, per-article counts, overlap of paragraphs and the sets' hashes, for run params."""
        train_paras = {e.paragraph_id for e in self.train}
        per_title = {t: {"train": 0, "heldout": 0} for t in self.titles}
        for side, examples in (("train", self.train), ("heldout", self.heldout)):
            for e in examples:
                per_title[e.title][side] += 1
        shared = sum(1 for e in self.heldout if e.paragraph_id in train_paras)
        return {
            "titles": list(self.titles), "seed": self.seed,
            "n_train": len(self.train), "n_heldout": len(self.heldout),
            "paragraphs": len(self.paragraphs),
            "heldout_paragraphs": len({e.paragraph_id for e in self.heldout}),
            # held-out questions whose paragraph also has a train question: where memorised
            # domain facts can help
            "heldout_paragraph_in_train": shared,
            "heldout_paragraph_in_train_rate": shared / len(self.heldout) if self.heldout else 0.0,
            "per_title": per_title,
            "train_hash": ids_hash(self.train), "heldout_hash": ids_hash(self.heldout),
            **self.counts,
        }


def build_domain_task(paragraphs_jsonl: str | Path, qa_jsonl: str | Path, titles: Sequence[str], *,
                      n_train: int, n_heldout: int, seed: int = 0) -> DomainTask:
    """Split the questions of ``titles`` (spaces or underscores) into train and held-out sets.

    Questions are ordered by ``sha256(seed, id)``; the first ``n_heldout`` are held out, train
    takes the next ``n_train`` whose normalised text is not a held-out question's. Both keep the
    hash order. Same seed and sizes, same split; held-out sets are nested across ``n_heldout``
    (the first 100 are among the first 200).

    Raises
    ------
    DataError
        An unknown title (the message lists some that exist), malformed data, or fewer usable
        questions than ``n_train + n_heldout`` (the message names the numbers).
    ValueError
        No title, ``n_heldout < 1`` or ``n_train < 0``.
    """
    for name, value, low in (("n_train", n_train, 0), ("n_heldout", n_heldout, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    wanted = list(dict.fromkeys(t.replace(" ", "_") for t in titles)) if not isinstance(titles, str) else []
    if not wanted:
        raise ValueError(f"titles must be a non-empty list of article titles, got {titles!r}")
    paras, items = squad_questions(paragraphs_jsonl, qa_jsonl, wanted)
    counts = {"questions_available": 0, "train_duplicates_moved": 0, "questions_without_answer": 0}
    examples = []
    for it in items:
        if not any(a.strip() for a in it.answers):
            counts["questions_without_answer"] += 1
            continue
        p = paras[it.doc_id or ""]
        examples.append(QAExample(it.id, it.question, tuple(it.answers), p.id, p.title, p.text))
    counts["questions_available"] = len(examples)
    examples = [examples[i] for i in hash_order([e.id for e in examples], seed, salt="split")]

    heldout = examples[:n_heldout]
    held_text = {normalize_answer(e.question) for e in heldout}
    train: list[QAExample] = []
    for e in examples[n_heldout:]:
        if len(train) == n_train:
            break
        if normalize_answer(e.question) in held_text:
            counts["train_duplicates_moved"] += 1
            continue
        train.append(e)
    if len(heldout) < n_heldout or len(train) < n_train:
        raise DataError(
            f"articles {wanted} have {len(examples)} questions with an answer, "
            f"{counts['train_duplicates_moved']} of which repeat a held-out question's text and stay out of "
            f"train: n_heldout={n_heldout} leaves {max(len(examples) - n_heldout, 0) - counts['train_duplicates_moved']} "
            f"for train, n_train={n_train} asked; lower n_train or n_heldout, or add articles"
        )
    paragraphs = {pid: {"title": p.title, "text": p.text} for pid, p in paras.items()}
    return DomainTask(wanted, train, heldout, paragraphs, seed=seed, counts=counts)


def build_testset_task(items: Sequence[TestsetItem], documents: dict[str, dict[str, str]], *, n_train: int,
                       n_heldout: int, seed: int = 0, source: str = "test set") -> DomainTask:
    """The domain task of a test set: its ``train`` rows to train on, its ``heldout`` rows to answer.

    A question becomes a :class:`QAExample` with ``answers = (answer,)``, ``context`` = its reference
    excerpts (blank-line joined), ``paragraph_id`` = the document of its first reference and ``title``
    that document's. ``unanswerable`` rows are not QA examples: they are counted
    (``unanswerable_train``, ``unanswerable_heldout``) and the held-out ones kept in
    :attr:`DomainTask.unanswerable`. As in :func:`build_domain_task`, a train row whose id or
    normalised question text is a held-out question's is left out and counted (``train_duplicates_moved``).

    Parameters
    ----------
    items:
        The test set's rows, reviewed where a review exists (rejected rows gone, edits applied).
    documents:
        Doc id -> ``{"title", "text"}`` of the corpus folder the references point into: the RAG
        corpus, and the texts the references are checked against.
    n_train, n_heldout:
        Caps: each split's rows in ``sha256(seed, id)`` order, the first ``n`` kept (a split smaller
        than its cap is kept whole; ``counts`` says how many were available).
    source:
        The test set's name for messages.

    Raises
    ------
    DataError
        A reference into a document the corpus lacks or whose offsets do not match its text (the
        message names the row), or an empty split.
    ValueError
        ``n_heldout < 1`` or ``n_train < 0``.
    """
    for name, value, low in (("n_train", n_train, 0), ("n_heldout", n_heldout, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    counts = {"questions_available": 0, "train_available": 0, "heldout_available": 0, "train_duplicates_moved": 0,
              "unanswerable_train": 0, "unanswerable_heldout": 0, "multi_passage": 0}
    sides: dict[str, list[QAExample]] = {"train": [], "heldout": []}
    unanswerable: list[QAExample] = []
    for it in items:
        if it.question_type == "unanswerable":
            counts[f"unanswerable_{it.split}"] += 1
            if it.split == "heldout":
                doc = documents.get(it.doc_id or "", {})
                unanswerable.append(QAExample(it.id, it.question, (), it.doc_id or "", doc.get("title", ""), ""))
            continue
        check_testset_references(it, documents)
        counts["multi_passage"] += it.question_type == "multi"
        first = it.reference_docs[0]
        sides[it.split].append(QAExample(it.id, it.question, (it.answer,), first, documents[first]["title"],
                                         it.excerpt))
    counts["questions_available"] = len(sides["train"]) + len(sides["heldout"])
    counts["train_available"], counts["heldout_available"] = len(sides["train"]), len(sides["heldout"])
    ordered = {k: [v[i] for i in hash_order([e.id for e in v], seed, salt="split")] for k, v in sides.items()}
    heldout = ordered["heldout"][:n_heldout]
    held_ids = {e.id for e in heldout}
    held_text = {normalize_answer(e.question) for e in heldout}
    train: list[QAExample] = []
    for e in ordered["train"]:
        if len(train) == n_train:
            break
        if e.id in held_ids or normalize_answer(e.question) in held_text:
            counts["train_duplicates_moved"] += 1
            continue
        train.append(e)
    if not heldout or not train:
        raise DataError(f"{source}: {len(train)} train and {len(heldout)} held-out questions with an answer "
                        f"({counts['unanswerable_train'] + counts['unanswerable_heldout']} unanswerable ones set "
                        f"aside, {counts['train_duplicates_moved']} train questions repeating a held-out one left "
                        "out); the fine-tune comparison needs both splits: generate a larger test set, or review "
                        "fewer items away")
    titles = list(dict.fromkeys(e.title for e in [*train, *heldout]))
    return DomainTask(titles, train, heldout, dict(documents), seed=seed, counts=counts, corpus_kind="documents",
                      unanswerable=unanswerable)


def pick_shots(train: Sequence[QAExample], k: int, seed: int) -> list[QAExample]:
    """``k`` train questions in ``sha256(seed, id)`` order (deterministic; nested across k).

    Raises
    ------
    ValueError
        ``k`` negative or larger than ``len(train)``.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(train):
        raise ValueError(f"pick_shots: k must be an integer in [0, {len(train)}] (train size), got {k!r}")
    return [train[i] for i in hash_order([e.id for e in train], seed, salt="shots")[:k]]
