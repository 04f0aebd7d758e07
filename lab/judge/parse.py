"""Turning a judge's raw output into a verdict, with one repair attempt and never a silent NaN.

:func:`parse_verdict` first reads the output strictly (a JSON object whose ``verdict`` is one of the
rubric's labels, or exactly one label word). When that fails it makes ONE repair attempt:
``json_repair`` (a maintained library, rather than hand-written brace fixing) on the text, then the
verdict word normalised (case, surrounding quotes and punctuation), then a lone label word at the
start of the text. What still fails is a :class:`Parsed` with ``verdict=None`` and the reason, which
the judge counts and reports with the raw text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lab.judge.rubric import Rubric


@dataclass(frozen=True)
class Parsed:
    """A verdict read from raw output; ``verdict`` None means a parse failure (see ``error``)."""

    verdict: int | None
    label: str | None = None
    reason: str = ""
    spans: tuple[str, ...] = field(default_factory=tuple)
    repaired: bool = False
    error: str | None = None


def _word(value: Any, rubric: Rubric, *, loose: bool) -> str | None:
    if not isinstance(value, str):
        return None
    if value in rubric.labels:
        return value
    if not loose:
        return None
    norm = value.strip().strip("\"'`*.!,:;()[]").strip().lower()
    hits = [w for w in rubric.labels if w.lower() == norm]
    return hits[0] if len(hits) == 1 else None


def _from_object(obj: Any, rubric: Rubric, *, loose: bool) -> Parsed | None:
    if not isinstance(obj, dict):
        return None
    word = _word(obj.get("verdict"), rubric, loose=loose)
    if word is None:
        return None
    spans = obj.get("spans") or []
    spans = tuple(s for s in spans if isinstance(s, str)) if isinstance(spans, list) else ()
    reason = obj.get("reason")
    return Parsed(rubric.labels[word], word, reason if isinstance(reason, str) else "", spans, repaired=loose)


def parse_verdict(raw: str, rubric: Rubric) -> Parsed:
    """The verdict in ``raw`` (see the module docstring)."""
    text = (raw or "").strip()
    if not text:
        return Parsed(None, error="empty output")
    if text in rubric.labels:
        return Parsed(rubric.labels[text], text)
    try:
        strict = _from_object(json.loads(text), rubric, loose=False)
    except ValueError:
        strict = None
    if strict is not None:
        return strict
    # --- the one repair attempt
    from json_repair import repair_json

    try:
        repaired = repair_json(text, return_objects=True)
    except Exception:  # noqa: BLE001 - json_repair raises assorted errors on hostile input; reported below
        repaired = None
    got = _from_object(repaired, rubric, loose=True)
    if got is not None:
        return got
    m = re.match(r"^\W*(\w+)", text)
    if m:
        word = _word(m.group(1), rubric, loose=True)
        if word is not None:
            return Parsed(rubric.labels[word], word, repaired=True)
    return Parsed(None, error=f"no verdict in {', '.join(rubric.labels)} found (after repair)")
