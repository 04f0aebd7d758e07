"""Labelled judgment files: the two HaluEval formats and the gateway's exported feedback.

One record becomes one or two :class:`JudgedItem` (label 1 = hallucinated / unfaithful / bad):

``general``   ``{"user_query", "chatgpt_response", "hallucination": "yes"|"no"}`` (HaluEval general,
              human labels): one item, no grounding text.
``grounded``  ``{"knowledge", "question", "right_answer", "hallucinated_answer"}`` (HaluEval QA):
              two items, the right answer (0) and the hallucinated one (1), both grounded in
              ``knowledge``; they share a ``group`` so that splits keep a seed's pair together.
``feedback``  ``{"question", "answer", "rating": "up"|"down", "contexts"?: [...]}`` (thumbs from the
              serving gateway): down = 1.
``answers``   ``{"question", "answer", "context": str | "contexts": [str, ...], "label", "spans"?}``
              (long RAG answers labelled by people): one item; ``label`` is ``"hallucinated"`` (1),
              ``"faithful"`` (0), or the integers 1 / 0; passages of ``contexts`` are joined with a
              blank line; ``spans`` (optional) lists the hallucinated parts of the answer as
              ``{"start", "end"}`` character offsets (``0 <= start < end <= len(answer)``; a faithful
              answer's list is empty, a hallucinated one's is not). :attr:`JudgedItem.spans` is None
              where the record has no ``spans`` key.

The format is read from the keys of each record (a file may not mix formats). Labels are strict:
``"Yes "``, ``"maybe"`` or a missing field is a malformed record, reported with its line number;
:func:`read_judged` stops on the first batch of them unless ``skip_bad`` is set, in which case the
skipped lines are counted and kept in :attr:`JudgedSet.rejected`. The data-quality stage reports
the records this reader rejects (:mod:`lab.data.quality`), so a file it passes is one the judge
stage accepts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.data.split import hash_split
from lab.errors import DataError
from lab.io import iter_jsonl

FORMATS: dict[str, tuple[str, ...]] = {
    "general": ("user_query", "chatgpt_response", "hallucination"),
    "grounded": ("knowledge", "question", "right_answer", "hallucinated_answer"),
    "feedback": ("question", "answer", "rating"),
    "answers": ("question", "answer", "label", "context or contexts"),
}
#: Keys that point to a format without being required (``contexts`` is also feedback's, so it does not).
_HINTS = {"answers": ("context", "spans")}
YES_NO = {"yes": 1, "no": 0}
RATING = {"down": 1, "up": 0}
ANSWER_LABELS = {"hallucinated": 1, "faithful": 0}


@dataclass(frozen=True)
class JudgedItem:
    """One answer with its human (or constructed) label."""

    id: str
    question: str
    answer: str
    context: str | None      # grounding text; None where the record has none
    label: int               # 1 = hallucinated / unfaithful / thumbs down
    group: str               # items of one source record share it (for leak-free splits)
    line: int
    spans: tuple[tuple[int, int], ...] | None = None   # hallucinated parts of the answer, where labelled


@dataclass
class JudgedSet:
    """A labelled file read: its format, items, and the malformed records skipped."""

    path: Path
    format: str
    items: list[JudgedItem] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)   # (line, why)
    n_records: int = 0

    @property
    def skipped(self) -> list[str]:
        """The malformed records as ``"line N: why"``."""
        return [f"line {i}: {why}" for i, why in self.rejected]

    @property
    def labels(self) -> list[int]:
        return [i.label for i in self.items]

    @property
    def grounded(self) -> bool:
        return all(i.context is not None for i in self.items)


def _detect(rec: dict[str, Any], current: str | None = None) -> str | None:
    """The format whose keys ``rec`` holds most of (at least two); ``current`` (the file's format so
    far) wins a tie, so a record missing its label key is reported as malformed, not as another format."""
    scores = {f: sum(k in rec for k in (*keys, *_HINTS.get(f, ()))) for f, keys in FORMATS.items()}
    best = max(scores, key=lambda f: scores[f])
    if current is not None and scores.get(current, 0) >= scores[best]:
        return current
    return best if scores[best] >= 2 else None


def _text(rec: dict[str, Any], key: str) -> str:
    value = rec.get(key)
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} is missing" if key not in rec else  # noqa: TRY004 - a record error, reported by line
                         f"field {key!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"field {key!r} is empty")
    return value


def judged_items(fmt: str, rec: dict[str, Any], line: int) -> list[JudgedItem]:
    """The items of one record of format ``fmt`` (from line ``line``).

    Raises
    ------
    ValueError
        The record is malformed for ``fmt``: a field missing, empty or of the wrong type, or a label
        that is not exactly one of the allowed strings (``"Yes "`` is rejected, not trimmed: what
        the label means is the annotator's to say).
    """
    if fmt == "general":
        q, a = _text(rec, "user_query"), _text(rec, "chatgpt_response")
        raw = rec.get("hallucination")
        if raw not in YES_NO:
            raise ValueError(f"'hallucination' must be exactly \"yes\" or \"no\", got {raw!r}")
        rid = str(rec.get("ID", line))
        return [JudgedItem(rid, q, a, None, YES_NO[raw], _group(q), line)]
    if fmt == "grounded":
        k, q = _text(rec, "knowledge"), _text(rec, "question")
        right, wrong = _text(rec, "right_answer"), _text(rec, "hallucinated_answer")
        g = _group(k + "\n" + q)
        return [JudgedItem(f"{g}-right", q, right, k, 0, g, line),
                JudgedItem(f"{g}-hallucinated", q, wrong, k, 1, g, line)]
    if fmt == "answers":
        return [answer_item(rec, line)]
    q, a = _text(rec, "question"), _text(rec, "answer")
    raw = rec.get("rating")
    if raw not in RATING:
        raise ValueError(f"'rating' must be exactly \"up\" or \"down\", got {raw!r}")
    ctx = rec.get("contexts")
    if ctx is not None and (not isinstance(ctx, list) or not all(isinstance(c, str) for c in ctx)):
        raise ValueError("'contexts' must be a list of strings")
    rid = str(rec.get("response_id", line))
    return [JudgedItem(rid, q, a, "\n\n".join(ctx) if ctx else None, RATING[raw], _group(rid + q), line)]


def answer_item(rec: dict[str, Any], line: int) -> JudgedItem:
    """The item of an ``answers`` record (see the module docstring); ValueError names the key and the fix."""
    q, a = _text(rec, "question"), _text(rec, "answer")
    if "context" in rec and "contexts" in rec:
        raise ValueError("give 'context' (a string) or 'contexts' (a list of strings), not both")
    if "context" in rec:
        context = _text(rec, "context")
    elif "contexts" in rec:
        ctx = rec["contexts"]
        if not isinstance(ctx, list) or not ctx or not all(isinstance(c, str) and c.strip() for c in ctx):
            raise ValueError("'contexts' must be a non-empty list of non-empty strings (the passages the answer "
                             "was grounded in)")
        context = "\n\n".join(ctx)
    else:
        raise ValueError("field 'context' or 'contexts' is missing: add the grounding text as \"context\": "
                         "\"...\" or the passages as \"contexts\": [\"...\", ...]")
    if "label" not in rec:
        raise ValueError("field 'label' is missing: add \"label\": \"hallucinated\" or \"faithful\" (or 1 / 0)")
    raw = rec["label"]
    if isinstance(raw, bool) or raw not in (*ANSWER_LABELS, 0, 1):   # True == 1 in Python: say which is meant
        raise ValueError(f"'label' must be exactly \"hallucinated\", \"faithful\", 1 or 0, got {raw!r}")
    label = ANSWER_LABELS[raw] if isinstance(raw, str) else int(raw)
    spans = _spans(rec, a, label) if "spans" in rec else None
    rid = str(rec.get("id", line))
    return JudgedItem(rid, q, a, context, label, _group(q + "\n" + context), line, spans)


def _spans(rec: dict[str, Any], answer: str, label: int) -> tuple[tuple[int, int], ...]:
    raw = rec["spans"]
    if not isinstance(raw, list):
        raise ValueError(f"'spans' must be a list of {{\"start\": int, \"end\": int}}, got {type(raw).__name__}")  # noqa: TRY004 - a record error, reported by line
    out = []
    for n, sp in enumerate(raw):
        where = f"'spans'[{n}]"
        if not isinstance(sp, dict) or not {"start", "end"} <= sp.keys():
            raise ValueError(f"{where} must be an object with 'start' and 'end' (character offsets into 'answer'), "
                             f"got {sp!r}")
        s, e = sp["start"], sp["end"]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (s, e)):
            raise ValueError(f"{where}: 'start' and 'end' must be integers, got {s!r} and {e!r}")
        if not 0 <= s < e <= len(answer):
            raise ValueError(f"{where}: ({s}, {e}) is out of range: offsets into 'answer' need "
                             f"0 <= start < end <= {len(answer)} (the answer's length in characters)")
        out.append((s, e))
    if label == 0 and out:
        raise ValueError("'spans' lists hallucinated parts but 'label' is faithful: fix the label or empty the spans")
    if label == 1 and not out:
        raise ValueError("'spans' is empty but 'label' is hallucinated: list the hallucinated parts, or drop "
                         "the 'spans' key when they were not marked")
    return tuple(out)


def _group(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_judged(path: str | Path, *, skip_bad: bool = False, fmt: str | None = None) -> JudgedSet:
    """Read a labelled judgment file (JSON lines) in any format of :data:`FORMATS`.

    This is the one HaluEval reader: the judge stage trains and scores on what it returns, and the
    data-quality stage reports what it rejects (``skip_bad=True``, then :attr:`JudgedSet.rejected`).

    Raises
    ------
    DataError
        Missing file, no recognisable format (the message lists each format's keys), records of two
        formats, malformed records (line numbers; pass ``skip_bad`` to leave them out), or nothing usable.
    """
    out = scan_judged(path, fmt=fmt)
    p = out.path
    if out.skipped and not skip_bad:
        head = "; ".join(out.skipped[:5])
        raise DataError(f"{p}: {len(out.skipped)} malformed record(s) of {out.n_records}: {head}"
                        f"{' …' if len(out.skipped) > 5 else ''}. Fix them, or pass --skip-bad to leave them "
                        f"out (they are counted in 'skipped').")
    if not out.items:
        raise DataError(f"{p}: no usable records ({out.n_records} read, {len(out.skipped)} malformed)")
    return out


def scan_judged(path: str | Path, *, fmt: str | None = None) -> JudgedSet:
    """Every record of a labelled judgment file checked: the items of the good ones and, in
    :attr:`JudgedSet.rejected`, the line and reason of each malformed one (nothing raised for them).

    Raises
    ------
    DataError
        Missing or unreadable file, an unknown ``fmt``, or records of two formats.
    """
    p = Path(path)
    if fmt is not None and fmt not in FORMATS:
        raise DataError(f"unknown judgment format {fmt!r}; known: {', '.join(FORMATS)}")
    out = JudgedSet(p, fmt or "")
    for row in iter_jsonl(p, strict=False):
        i = row.line
        out.n_records += 1
        if row.error is not None:
            out.rejected.append((i, row.error))
            continue
        rec = row.record
        found = _detect(rec, out.format or None)
        if not out.format:
            if found is None:
                out.rejected.append((i, "no known format; expected the keys of one of: "
                                     + "; ".join(f"{f}: {', '.join(k)}" for f, k in FORMATS.items())))
                continue
            out.format = found
        elif found is not None and found != out.format:
            raise DataError(f"{p}: line {i} is a {found!r} record but the file began as {out.format!r}; "
                            f"one format per file")
        try:
            out.items.extend(judged_items(out.format, rec, i))
        except ValueError as exc:
            out.rejected.append((i, str(exc)))
    return out


def split_by_group(items: list[JudgedItem], fraction: float, *, seed: int = 0
                   ) -> tuple[list[JudgedItem], list[JudgedItem]]:
    """(rest, part), each in file order: ``part`` holds about ``fraction`` of the groups, chosen by
    the hash of (seed, group) (:func:`lab.data.split.hash_split` with ``fraction``), so a split never
    depends on file order or on the other groups, and a seed's pair never straddles it."""
    groups = sorted({i.group for i in items})
    _, held = hash_split(groups, seed, fraction=fraction)
    inside = {groups[j] for j in held}
    return [i for i in items if i.group not in inside], [i for i in items if i.group in inside]
