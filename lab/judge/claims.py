"""An answer split into claims, each with exact character offsets into the answer.

A claim is what a grounded judge checks on its own: a sentence, a clause after a semicolon, or a
list item. Sentence boundaries come from ``sentencex`` through
:func:`lab.chunking.sentence.sentence_spans`, the segmenter the sentence chunker already uses (a
dependency of the project, rule-based, offline, character offsets, and it knows abbreviations such
as "e.g.", "U.S.", "Dr." and decimals such as "3.5"); writing another regex here would split after
every abbreviation, and a second library (pysbd, NLTK's punkt) would add a dependency that is slower
or needs a data download (measured in :mod:`lab.chunking.sentence`).

Rules, in order:

1. List items: a line whose first non-blank characters are a bullet (``-``, ``*``, ``+``, ``•``,
   ``–``) or a number (``1.``, ``2)``) followed by a space starts a new block; the marker is not part
   of the claim. Other lines stay in their block (sentencex treats a line break as a space unless
   the text around it ends a sentence).
2. Sentences within each block (sentencex).
3. Semicolons: a sentence is cut after each ``;`` that a space or line break follows.
4. Fragments of fewer than ``min_words`` words (``\\w+`` tokens: "Yes.", "In 1999;") are merged
   into the claim before them, or into the next one when they come first; the merged claim spans
   both, with what lies between (so ``answer[start:end] == text`` still holds).

Every claim is stripped of surrounding whitespace and is non-empty; claims are in answer order and
do not overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.chunking.base import strip_span
from lab.chunking.sentence import sentence_spans

# A list item: start of a line, optional indent, a bullet or "12." / "12)", then a space.
_ITEM = re.compile(r"^[ \t]*(?:[-*+•–]|\d{1,3}[.)])[ \t]+", re.MULTILINE)
_SEMICOLON = re.compile(r";(?=\s)")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Claim:
    """One claim: ``text == answer[start:end]``."""

    start: int
    end: int
    text: str


def _blocks(answer: str) -> list[tuple[int, int]]:
    """The answer cut before each list item, each item's marker left out."""
    cuts = [(m.start(), m.end()) for m in _ITEM.finditer(answer)]
    out, pos = [], 0
    for start, body in cuts:
        out.append((pos, start))
        pos = body
    out.append((pos, len(answer)))
    return [b for b in (strip_span(answer, s, e) for s, e in out) if b[1] > b[0]]


def _clauses(answer: str, s: int, e: int) -> list[tuple[int, int]]:
    out, pos = [], s
    for m in _SEMICOLON.finditer(answer, s, e):
        out.append((pos, m.end()))
        pos = m.end()
    out.append((pos, e))
    return [c for c in (strip_span(answer, a, b) for a, b in out) if c[1] > c[0]]


def claim_spans(answer: str, *, min_words: int = 3, language: str = "en") -> list[tuple[int, int]]:
    """``(start, end)`` of each claim of ``answer`` (the module docstring's rules)."""
    spans: list[tuple[int, int]] = []
    for bs, be in _blocks(answer):
        for ss, se in sentence_spans(answer[bs:be], language):
            spans.extend(_clauses(answer, bs + ss, bs + se))
    if min_words <= 1 or len(spans) < 2:
        return spans
    merged: list[tuple[int, int]] = []
    carry: int | None = None   # start of leading short fragments waiting for the next claim
    for s, e in spans:
        short = len(_WORD.findall(answer[s:e])) < min_words
        if carry is not None:
            s, carry = carry, None
        if short and merged:
            merged[-1] = (merged[-1][0], e)
        elif short:
            carry = s
        else:
            merged.append((s, e))
    if carry is not None:   # every span was short: one claim of them all
        merged.append((carry, spans[-1][1]))
    return merged


def split_claims(answer: str, *, min_words: int = 3, language: str = "en") -> list[Claim]:
    """The claims of ``answer`` (see the module docstring), in order; ``[]`` for a blank answer.

    Parameters
    ----------
    answer : the text to split.
    min_words : a fragment with fewer ``\\w+`` words merges into a neighbour (1 or less: never).
    language : the sentencex language code.
    """
    return [Claim(s, e, answer[s:e]) for s, e in claim_spans(answer, min_words=min_words, language=language)]
