"""A long context cut into overlapping evidence windows that each fit a scoring model's input.

A cross-encoder reads at most ``max_length`` tokens (all-MiniLM-L6-v2 as the trained judge: 256)
and silently drops the rest; a retrieved context of several passages is far longer. So the context
is cut into windows, each at most ``max_tokens`` tokens of the MODEL's own tokenizer (the caller
passes ``count_tokens`` and the budget left after the claim, the question and the special tokens),
and every claim is scored against every window (:mod:`lab.judge.claim_judge`).

Windows are whole sentences of the context (:func:`lab.chunking.sentence.sentence_spans`) packed
greedily; a sentence longer than the budget is cut at spaces (at characters for one word longer than
the budget). The next window starts at the earliest sentence of the previous window such that the
repeated part holds at most ``overlap_tokens`` tokens, and always one sentence later than the
previous start: a fact split across a window boundary is whole in one of them when it fits in the
overlap. The stride is thus the window minus the overlap, in whole sentences.

Every non-blank character of the context is in at least one window; a window's text is
``context[start:end]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from lab.chunking.sentence import sentence_spans
from lab.errors import ConfigError

_NONSPACE = re.compile(r"\S+")


@dataclass(frozen=True)
class Window:
    """``text == context[start:end]``."""

    start: int
    end: int
    text: str


def _cut_to_fit(text: str, s: int, e: int, count_tokens: Callable[[str], int], budget: int) -> list[tuple[int, int]]:
    """``text[s:e]`` as consecutive pieces of at most ``budget`` tokens, cut at spaces where possible."""
    words = [(m.start(), m.end()) for m in _NONSPACE.finditer(text, s, e)]
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        ws, we = words[i]
        if count_tokens(text[ws:we]) > budget:   # one word over the budget: cut it by characters
            pos = ws
            while pos < we:
                lo, hi = pos + 1, we   # the longest prefix that fits (at least one character)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if count_tokens(text[pos:mid]) <= budget:
                        lo = mid
                    else:
                        hi = mid - 1
                out.append((pos, lo))
                pos = lo
            i += 1
            continue
        j = i + 1
        while j < len(words) and count_tokens(text[ws:words[j][1]]) <= budget:
            j += 1
        out.append((ws, words[j - 1][1]))
        i = j
    return out


def evidence_windows(context: str, *, count_tokens: Callable[[str], int], max_tokens: int,
                     overlap_tokens: int = 0, language: str = "en") -> list[Window]:
    """``context`` as windows of at most ``max_tokens`` tokens each (see the module docstring).

    A context that fits is one window (the whole context, stripped); a blank one has none.

    Parameters
    ----------
    count_tokens : the scoring model's token count of a text (no special tokens).
    max_tokens : the budget of one window.
    overlap_tokens : at most this many tokens of whole sentences repeat at the start of the next window.

    Raises
    ------
    ConfigError
        ``max_tokens`` below 1, or ``overlap_tokens`` negative.
    """
    if max_tokens < 1:
        raise ConfigError(f"evidence windows need max_tokens >= 1, got {max_tokens}: the claim and question "
                          f"leave no room for the context; use a model with a longer input or shorter claims")
    if overlap_tokens < 0:
        raise ConfigError(f"overlap_tokens must be >= 0, got {overlap_tokens}")
    stripped = context.strip()
    if not stripped:
        return []
    lead = len(context) - len(context.lstrip())
    if count_tokens(stripped) <= max_tokens:
        return [Window(lead, lead + len(stripped), stripped)]
    units: list[tuple[int, int]] = []
    for s, e in sentence_spans(context, language):
        if count_tokens(context[s:e]) <= max_tokens:
            units.append((s, e))
        else:
            units.extend(_cut_to_fit(context, s, e, count_tokens, max_tokens))
    alone = [count_tokens(context[s:e]) for s, e in units]
    spans: list[tuple[int, int]] = []
    i, covered = 0, 0   # units [0, covered) are in a window already
    while covered < len(units):
        j, total = i + 1, alone[i]
        while j < len(units) and total + alone[j] <= max_tokens:   # estimate, then check the real span
            total += alone[j]
            j += 1
        while j - i > 1 and count_tokens(context[units[i][0]:units[j - 1][1]]) > max_tokens:
            j -= 1
        if j <= covered:   # the overlap left no room for a new sentence: start later
            i += 1
            continue
        spans.append((units[i][0], units[j - 1][1]))
        covered = j
        k = j   # the earliest start whose repeated part (units k..j-1) fits the overlap
        while k - 1 > i and sum(alone[k - 1:j]) <= overlap_tokens:
            k -= 1
        i = max(i + 1, k)
    return [Window(s, e, context[s:e]) for s, e in spans]
