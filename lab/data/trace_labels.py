"""The labels people give served answers (the labelling queue, ``lab label``): the file format every
floor reads.

A labels file is JSON Lines: line 1 is the header ``{"format": "lab.trace-labels", "version": 1}``,
every other line one :class:`TraceLabel`, one per MLflow trace id (labelling a trace again replaces
its record). A record keeps what the person saw, so the file stands on its own without the tracking
store: the question, the answer as sent, the sources (the passages the prompt held, ``prompted``,
and the ones the context guardrails dropped), the judges' verdicts and the thumbs on the trace at
the time, and the person's ``label`` (:data:`LABELS`), ``comment``, ``corrected_answer``, name and
time; ``assessment_id`` is the label's assessment on the trace (None: it could not be logged there).

The file is rewritten whole and atomically on every label (:func:`record_label`, under a lock beside
it, so two app tabs do not lose each other's label); :func:`read_labels` names the file and line of
every problem. What calibration makes of the labels is :mod:`lab.judge.production`'s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from lab.config import StrictModel
from lab.errors import DataError
from lab.versioned import check_header, header

FORMAT = "lab.trace-labels"
VERSION = 1
#: How a labels file gets written.
REGENERATE = "lab label --labels FILE"
#: What a person may say of an answer: grounded in its sources and right; not supported by its
#: sources; supported (or not about them) but wrong; a question the sources cannot answer.
LABELS = ("faithful", "hallucinated", "wrong", "unanswerable")


class Source(StrictModel):
    """One source of the answer: a retrieved passage, as the prompt held it."""

    id: str
    score: float | None = None
    title: str = ""
    text: str = ""            # "" when neither the trace's prompt nor a bundle gave it
    prompted: bool = True     # False: the context guardrails dropped it (a source, not a context)


class Verdict(StrictModel):
    """An assessment on the trace (a judge's verdict, a rule's) as it was when the trace was labelled."""

    name: str
    value: bool | int | float | str | None = None
    source_type: str = ""
    source_id: str = ""
    rationale: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class TraceLabel(StrictModel):
    """One person's label of one served answer (see the module docstring)."""

    trace_id: str
    label: Literal["faithful", "hallucinated", "wrong", "unanswerable"]
    comment: str = ""
    corrected_answer: str | None = None
    question: str
    answer: str
    sources: list[Source] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    thumbs: Literal["up", "down"] | None = None
    labeller: str = ""
    labelled_at: str
    assessment_id: str | None = None

    @property
    def contexts(self) -> list[str]:
        """The texts of the passages the prompt held, in its order (what a grounding judge reads)."""
        return [s.text for s in self.sources if s.prompted and s.text.strip()]

    def record(self) -> dict[str, Any]:
        """The label as its line holds it."""
        return self.model_dump(mode="json")


@dataclass
class LabelsFile:
    """A labels file as :func:`read_labels` found it.

    Attributes
    ----------
    path:
        The file (it need not exist yet).
    labels:
        Trace id -> its label, in file order.
    lines:
        Trace id -> the line its record is on (for messages).
    rejected:
        ``(line, why)`` of each malformed record left out (only with ``skip_bad``).
    n_records:
        Records read (header not counted).
    """

    path: Path
    labels: dict[str, TraceLabel] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    n_records: int = 0

    def counts(self) -> dict[str, int]:
        """Labels given, by label (every label of :data:`LABELS`, 0 included)."""
        out = dict.fromkeys(LABELS, 0)
        for lab in self.labels.values():
            out[lab.label] += 1
        return out


def is_labels_file(path: str | Path) -> bool:
    """Whether the first non-blank line of ``path`` is a ``lab.trace-labels`` header (of any version)."""
    p = Path(path)
    if not p.is_file():
        return False
    with p.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    first = json.loads(raw.decode("utf-8-sig"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    return False
                return isinstance(first, dict) and first.get("format") == FORMAT
    return False


def read_labels(path: str | Path, *, missing_ok: bool = False, skip_bad: bool = False) -> LabelsFile:
    """The labels in ``path``.

    ``missing_ok``: a file that does not exist yet is no labels (the app's first start);
    ``skip_bad``: malformed records are left out and listed in :attr:`LabelsFile.rejected`.

    Raises
    ------
    DataError
        The file is missing (unless ``missing_ok``), line 1 is not the header of a
        ``lab.trace-labels`` file at version 1, or a record is not JSON, not a label (the key at
        fault and what it should be) or repeats a trace id (unless ``skip_bad``); every message
        names the file and the line.
    """
    from lab.io import iter_jsonl

    p = Path(path)
    out = LabelsFile(p)
    if not p.exists() and missing_ok:
        return out
    seen_header = False
    for row in iter_jsonl(p, strict=not skip_bad):
        if not seen_header:
            if row.error is not None:
                raise DataError(f"{row.where}: {row.error}; line 1 must be the header {json.dumps(header(FORMAT, VERSION))}")
            check_header(row.record, f"{row.where} (the header)", FORMAT, VERSION, REGENERATE)
            seen_header = True
            continue
        out.n_records += 1
        try:
            if row.error is not None:
                raise DataError(row.error)
            label = _validate(row.record)
            if label.trace_id in out.labels:
                raise DataError(f"trace {label.trace_id!r} is labelled again (first at line "
                                f"{out.lines[label.trace_id]}); keep one of the two records")
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{row.where}: {exc}") from None
            out.rejected.append((row.line, str(exc)))
            continue
        out.labels[label.trace_id] = label
        out.lines[label.trace_id] = row.line
    if not seen_header:
        raise DataError(f"{p}: empty; a labels file begins with the header {json.dumps(header(FORMAT, VERSION))} "
                        f"(`{REGENERATE}` writes one)")
    return out


def _validate(rec: dict[str, Any]) -> TraceLabel:
    try:
        return TraceLabel.model_validate(rec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "record"
        hint = f" (one of {', '.join(LABELS)})" if first["loc"][:1] == ("label",) else ""
        raise DataError(f"{where}: {first['msg']}{hint} ({exc.error_count()} problem(s) in this record)") from None


def write_labels(path: str | Path, labels: Iterable[TraceLabel]) -> Path:
    """Write ``labels`` (oldest label first, then by trace id) under the header, atomically.

    Raises
    ------
    ValueError
        Two labels of one trace id.
    """
    from lab.io import write_lines

    items = list(labels)
    ids = [x.trace_id for x in items]
    if len(ids) != len(set(ids)):
        raise ValueError("one label per trace id: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
    items.sort(key=lambda x: (x.labelled_at, x.trace_id))
    lines = [json.dumps(header(FORMAT, VERSION)) + "\n"]
    lines += [json.dumps(x.record(), ensure_ascii=False, sort_keys=True) + "\n" for x in items]
    return write_lines(path, lines)


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """An exclusive lock on ``.<name>.lock`` beside the labels file ``path`` while a label is read,
    changed and written (POSIX; elsewhere the write is still atomic, only concurrent writers race)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p.with_name(f".{p.name}.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def record_label(path: str | Path, label: TraceLabel) -> LabelsFile:
    """Add ``label`` to the labels file ``path`` (replacing its trace's earlier label; the file is
    created when missing) and write it atomically; returns the labels as now written.

    Raises
    ------
    DataError
        The file exists but is not a readable labels file (:func:`read_labels`).
    """
    with locked(path):
        now = read_labels(path, missing_ok=True)
        labels = {**now.labels, label.trace_id: label}
        write_labels(path, labels.values())
        return read_labels(path)

