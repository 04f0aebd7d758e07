"""A test set's review decisions file and the reviewed set: the file format every floor reads.

The decisions live beside the test set: ``testset.csv`` -> ``testset.review.json``, a versioned file
(``format`` ``lab.testset-review``, version 1) holding ``{testset_sha256, decisions: [{id, decision,
reason, question?, answer?, decided_at}]}``, one decision per item id (deciding again replaces it).
``decision`` is ``accept``, ``edit`` (``question`` and/or ``answer`` hold the new text) or ``reject``.

The reviewed set (:func:`reviewed_rows`) is the test set with rejected items removed and edits
applied; every row says how it got there (``review``: accepted, edited or unreviewed). Item ids are
stable hashes of the items, so decisions made on one version of the test set carry over to a
regenerated one; a decision whose item is gone is listed (:attr:`ReviewFile.orphaned`), never
silently dropped, and the file's ``testset_sha256`` says which version it was made on.

This is the data floor's module, so every reader of a test set (the Chroma loader of the chunking
study and the retrieval sweep, the fine-tune task, the judges' human labels) applies a review the
same way; recording decisions and what the review app shows are :mod:`lab.testset.review`'s.
"""

from __future__ import annotations

import csv
import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from lab.config import StrictModel
from lab.errors import DataError
from lab.versioned import read_versioned

FORMAT = "lab.testset-review"
VERSION = 1
#: How a decisions file gets written.
REGENERATE = "lab review --testset FILE"
DECISIONS = ("accept", "edit", "reject")
#: What a row of :func:`reviewed_rows` says about itself, by decision.
STATUS = {"accept": "accepted", "edit": "edited", None: "unreviewed"}
REQUIRED_COLUMNS = ("id", "question", "answer", "references", "corpus_id", "question_type")


def review_path(testset_csv: str | Path) -> Path:
    """The review decisions file of a test set: ``FILE`` minus ``.csv`` plus ``.review.json``."""
    p = Path(testset_csv)
    return p.with_name(p.name.removesuffix(".csv") + ".review.json")


class Decision(StrictModel):
    """One reviewer decision on one item."""

    id: str
    decision: Literal["accept", "edit", "reject"]
    reason: str = ""
    question: str | None = None   # edit only: the new question
    answer: str | None = None     # edit only: the new answer
    decided_at: str

    def record(self) -> dict[str, Any]:
        """The decision as the file holds it (no null question/answer keys)."""
        return self.model_dump(exclude_none=True)


class _Body(StrictModel):
    testset_sha256: str
    decisions: list[Decision]


@dataclass(frozen=True)
class ReviewFile:
    """The decisions on a test set, as :func:`load_decisions` found them.

    Attributes
    ----------
    path:
        The decisions file (it need not exist yet).
    testset_sha256:
        sha256 of the test set as it is now.
    reviewed_sha256:
        sha256 of the test set the file was last written against ("" when there is no file).
    decisions:
        Item id -> decision, for the items of the test set.
    orphaned:
        Decisions whose item id is not in the test set (it was regenerated): kept in the file,
        listed here and in :func:`review_counts`.
    """

    path: Path
    testset_sha256: str
    reviewed_sha256: str
    decisions: dict[str, Decision] = field(default_factory=dict)
    orphaned: list[Decision] = field(default_factory=list)

    @property
    def stale(self) -> bool:
        """The file was written against another version of the test set."""
        return bool(self.reviewed_sha256) and self.reviewed_sha256 != self.testset_sha256

    def problems(self) -> list[str]:
        """What a reader should be told: another test set version, decisions without an item."""
        out = []
        if self.stale:
            out.append(f"{self.path}: decisions made on another version of the test set (sha256 "
                       f"{self.reviewed_sha256[:12]}, now {self.testset_sha256[:12]}); decisions apply by item id")
        if self.orphaned:
            out.append(f"{self.path}: {len(self.orphaned)} decision(s) for items no longer in the test set: "
                       + ", ".join(f"{d.id} ({d.decision})" for d in self.orphaned))
        return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_testset(testset_csv: str | Path) -> list[dict[str, str]]:
    """The test set's rows, in file order, as dicts of strings.

    Raises
    ------
    DataError
        The file is missing, not UTF-8, lacks a column of :data:`REQUIRED_COLUMNS`, or has an empty
        or repeated ``id`` (the message names the row).
    """
    p = Path(testset_csv)
    if not p.is_file():
        raise DataError(f"{p}: test set not found; `lab testset generate CORPUS --out {p}` writes it")
    try:
        with open(p, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = [dict(r) for r in reader]
            columns = reader.fieldnames or []
    except UnicodeDecodeError as exc:
        raise DataError(f"{p}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(f"{p}: column(s) {missing} missing (columns present: {columns}); not a lab test set")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=2):   # line 1 is the header
        rid = row["id"]
        if not rid:
            raise DataError(f"{p}: row at line {i} has an empty id")
        if rid in seen:
            raise DataError(f"{p}: id {rid!r} at line {i} repeats line {seen[rid]}")
        seen[rid] = i
    return rows


def load_decisions(testset_csv: str | Path) -> ReviewFile:
    """The decisions on ``testset_csv`` (none when its decisions file does not exist yet).

    Raises
    ------
    DataError
        The test set is unreadable, or the decisions file is not JSON, not a ``lab.testset-review``
        file at version 1, or holds a malformed decision (the message names the file and entry).
    """
    rows = read_testset(testset_csv)
    return load_review(Path(testset_csv), {r["id"] for r in rows})


def load_review(testset_csv: Path, ids: set[str]) -> ReviewFile:
    """The decisions file of ``testset_csv`` against the item ``ids`` it has now (:func:`load_decisions`)."""
    path, sha = review_path(testset_csv), file_sha256(testset_csv)
    if not path.exists():
        return ReviewFile(path, sha, "")
    data = read_versioned(path, FORMAT, VERSION, REGENERATE)
    data.pop("format"), data.pop("version")
    try:
        body = _Body.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise DataError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s)); fix or delete "
                        f"the entry, or review again with `{REGENERATE}`") from None
    by_id: dict[str, Decision] = {}
    for d in body.decisions:
        if d.id in by_id:
            raise DataError(f"{path}: two decisions for item {d.id!r}; keep one")
        by_id[d.id] = d
    orphaned = [d for i, d in by_id.items() if i not in ids]
    return ReviewFile(path, sha, body.testset_sha256, {i: d for i, d in by_id.items() if i in ids}, orphaned)


def reviewed_rows(testset_csv: str | Path, *,
                  on_problem: Literal["warn", "error", "ignore"] = "warn") -> list[dict[str, Any]]:
    """The reviewed test set: rejected items removed, edits applied, file order kept; each row (the
    CSV's columns) gets ``review``: ``accepted``, ``edited`` or ``unreviewed``. Without a decisions
    file every row is unreviewed.

    ``on_problem``: what a stale decisions file (another test set version) or decisions on items no
    longer in the test set do: a :class:`UserWarning` naming them (default), a :class:`DataError`,
    or nothing.
    """
    rows = read_testset(testset_csv)
    review = load_review(Path(testset_csv), {r["id"] for r in rows})
    problems = review.problems()
    if problems and on_problem == "error":
        raise DataError("; ".join(problems))
    if problems and on_problem == "warn":
        warnings.warn("; ".join(problems), stacklevel=2)
    out: list[dict[str, Any]] = []
    for row in rows:
        d = review.decisions.get(row["id"])
        if d is not None and d.decision == "reject":
            continue
        new: dict[str, Any] = dict(row)
        if d is not None and d.decision == "edit":
            new["question"] = row["question"] if d.question is None else d.question
            new["answer"] = row["answer"] if d.answer is None else d.answer
        new["review"] = STATUS[d.decision if d else None]
        out.append(new)
    return out
