"""A test set as the studies read it: the ``testset`` stage's CSV with its human review applied, and
the review's decisions as human labels for the judges.

- :func:`read_testset_items`: where a review file sits beside the CSV, the reviewed set (CONTRACT:
  rejected items gone, edits applied) through :func:`lab.testset.review.reviewed_rows` (an error when
  that module is not installed: a review is never ignored in silence); without one, the CSV as
  written. Rows are parsed by the one test set row parser, :func:`lab.data.qa.testset_item`.
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

import importlib
import importlib.util
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.halueval import JudgedItem
from lab.data.qa import (TestsetItem, check_testset_references, check_unique_ids, load_testset, review_path,  # noqa: F401
                         testset_item)
from lab.errors import DataError

REGENERATE = "dvc repro testset"
REVIEW_FORMAT = "lab.testset-review"
REVIEW_VERSION = 1
DECISIONS = ("accept", "edit", "reject")
#: The module that applies a review (the review tool's), imported where installed.
REVIEW_MODULE = "lab.testset.review"


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


def _reviewer() -> Any:
    """:func:`lab.testset.review.reviewed_rows`, or None where the review module is not installed."""
    try:
        spec = importlib.util.find_spec(REVIEW_MODULE)
    except ModuleNotFoundError:
        spec = None
    return None if spec is None else importlib.import_module(REVIEW_MODULE).reviewed_rows


def _row(rec: Any) -> Any:
    """A reviewed row's blank cells as "" (a reader may give None or NaN where the CSV had nothing)."""
    if not isinstance(rec, dict):
        return rec
    return {k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v for k, v in rec.items()}


def read_testset_items(testset_csv: str | Path) -> TestsetItems:
    """The test set's items, reviewed where a review file sits beside it (module docstring).

    Raises
    ------
    DataError
        The CSV is missing (the message names it and the stage that writes it), a row is malformed,
        or a review file exists but :mod:`lab.testset.review` is not installed to apply it.
    """
    path = Path(testset_csv)
    if not path.is_file():
        raise _missing(path)
    review = review_path(path)
    if not review.is_file():
        return TestsetItems(path, load_testset(path), reviewed=False)
    reviewed_rows = _reviewer()
    if reviewed_rows is None:
        raise DataError(f"{review}: review decisions exist for {path}, but {REVIEW_MODULE} (which applies "
                        "them) is not installed; install lab with its testset package, or move the review "
                        "file away to use the set unreviewed")
    items = [testset_item(_row(rec), f"{path}: item {rec.get('id') if isinstance(rec, dict) else i}")
             for i, rec in enumerate(reviewed_rows(path), start=1)]
    check_unique_ids(items, str(path))
    return TestsetItems(path, items, reviewed=True)


def read_decisions(testset_csv: str | Path) -> list[dict[str, Any]]:
    """The review decisions of a test set (``{id, decision, reason, question?, answer?, ...}``).

    Raises
    ------
    DataError
        No review file (the message says how to review), another format or version, or a decision
        without an id or with an unknown decision.
    """
    from lab.versioned import read_versioned

    path = review_path(testset_csv)
    if not path.is_file():
        raise DataError(f"{path}: no review of {testset_csv}; the human labels are the decisions of "
                        "reviewing it (the test set review app writes this file)")
    body = read_versioned(path, REVIEW_FORMAT, REVIEW_VERSION, f"a review of {testset_csv} in the review app")
    decisions = body.get("decisions")
    if not isinstance(decisions, list):
        raise DataError(f"{path}: 'decisions' must be a list")
    for i, d in enumerate(decisions):
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or d.get("decision") not in DECISIONS:
            raise DataError(f"{path}: decisions[{i}] needs a string 'id' and a 'decision' of "
                            f"{', '.join(DECISIONS)}; got {d!r:.160}")
    return decisions


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
    raw = {it.id: it for it in load_testset(path)}    # as generated: rejected items included
    decisions = {d["id"]: d for d in read_decisions(path)}   # a later decision of an id replaces an earlier
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
        if d["decision"] == "edit":
            question, answer = d.get("question") or question, d.get("answer") or answer
        elif d["decision"] == "reject":
            if reason_key(d.get("reason")) not in unsupported:
                excluded[f"reject:{reason_key(d.get('reason')) or 'no reason'}"] += 1
                continue
            label = 1
        items.append(JudgedItem(item_id, question, answer, it.excerpt, label, item_id, line))
    counts = {"items": len(raw), "decisions": len(decisions), "supported": sum(i.label == 0 for i in items),
              "unsupported": sum(i.label == 1 for i in items),
              "unknown_ids": sum(1 for k in decisions if k not in raw), "excluded": dict(sorted(excluded.items()))}
    return ReviewLabels(items, counts)
