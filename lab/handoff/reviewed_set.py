"""A test set as the studies read it: the ``testset`` stage's CSV with its human review applied, and
the review's decisions as human labels for the judges.

- :func:`read_testset_items`: where a review file sits beside the CSV, the reviewed set (CONTRACT:
  rejected items gone, edits applied: :func:`lab.data.qa.load_reviewed_testset`, the one reader
  every study uses); without one, the CSV as written.
- :func:`review_labels`: every decided item as a (question, excerpt, answer) triple labelled "does
  the excerpt support the answer" (:class:`lab.data.halueval.JudgedItem`, ``label`` 1 = unsupported,
  as the judges' grounded task has it).

The mapping of decisions to labels: ``accept`` -> supported (0); ``edit`` -> the edited question and
answer, supported (0: the reviewer made it right against the excerpt); ``reject`` with a reason of
``unsupported_reasons`` -> the item as generated, unsupported (1); ``reject`` with any other reason
(wording, duplicate, trivial...) says nothing about grounding: left out and counted by reason, as are
``unanswerable`` items (no excerpt) and undecided ones.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.halueval import JudgedItem
from lab.data.qa import TestsetItem, check_testset_references, load_reviewed_testset, load_testset
from lab.data.review_file import load_decisions, review_path
from lab.errors import DataError

REGENERATE = "dvc repro testset"


def _missing(path: Path) -> DataError:
    return DataError(f"{path}: test set not found; the testset stage writes it (`{REGENERATE}`, or "
                     f"`lab testset generate CORPUS --out {path}`)")


@dataclass
class TestsetItems:
    """The items of a test set and whether a review was applied to them."""

    __test__ = False   # not a pytest test class

    path: Path
    items: list[TestsetItem]
    reviewed: bool


def read_testset_items(testset_csv: str | Path) -> TestsetItems:
    """The test set's items, reviewed where a review file sits beside it (module docstring).

    Raises
    ------
    DataError
        The CSV is missing (the message names it and the stage that writes it), a row or the review
        file is malformed.
    """
    path = Path(testset_csv)
    if not path.is_file():
        raise _missing(path)
    items, reviewed = load_reviewed_testset(path)
    return TestsetItems(path, items, reviewed=reviewed)


def reason_key(reason: Any) -> str:
    """A reject reason compared by: lower case, the part before any ':', other characters as '_'."""
    text = str(reason or "").split(":", 1)[0].lower()
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


@dataclass
class ReviewLabels:
    """Human labels of a reviewed test set: the labelled triples and what was left out, by why."""

    items: list[JudgedItem]
    counts: dict[str, Any] = field(default_factory=dict)


def review_labels(testset_csv: str | Path, documents: dict[str, dict[str, str]] | None,
                  unsupported_reasons: Sequence[str]) -> ReviewLabels:
    """The decided items of a reviewed test set as judge items (module docstring for the mapping).

    ``documents`` (doc id -> ``{"title", "text"}``), when given, is what the references are checked
    against. ``counts``: ``items``, ``decisions``, ``supported``, ``unsupported``, ``unknown_ids``
    (decisions of ids the CSV lacks) and ``excluded`` (``unanswerable``, ``undecided``,
    ``reject:<reason>``).

    Raises
    ------
    DataError
        A missing CSV or review, malformed rows, or references that do not match ``documents``.
    """
    path = Path(testset_csv)
    if not path.is_file():
        raise _missing(path)
    if not review_path(path).is_file():
        raise DataError(f"{review_path(path)}: no review of {path}; the human labels are the decisions of "
                        "reviewing it (`lab review` writes this file)")
    raw = {it.id: it for it in load_testset(path)}    # as generated: rejected items included
    review = load_decisions(path)
    decisions = review.decisions
    unsupported = {reason_key(r) for r in unsupported_reasons}
    excluded: Counter[str] = Counter()
    items: list[JudgedItem] = []
    for line, (item_id, it) in enumerate(raw.items(), start=1):
        d = decisions.get(item_id)
        if it.question_type == "unanswerable":
            excluded["unanswerable"] += 1
            continue
        if d is None:
            excluded["undecided"] += 1
            continue
        if documents is not None:
            check_testset_references(it, documents)
        question, answer, label = it.question, it.answer, 0
        if d.decision == "edit":
            question, answer = d.question or question, d.answer or answer
        elif d.decision == "reject":
            if reason_key(d.reason) not in unsupported:
                excluded[f"reject:{reason_key(d.reason) or 'no reason'}"] += 1
                continue
            label = 1
        items.append(JudgedItem(item_id, question, answer, it.excerpt, label, item_id, line))
    counts = {"items": len(raw), "decisions": len(decisions) + len(review.orphaned),
              "supported": sum(i.label == 0 for i in items), "unsupported": sum(i.label == 1 for i in items),
              "unknown_ids": len(review.orphaned), "excluded": dict(sorted(excluded.items()))}
    return ReviewLabels(items, counts)
