"""Word-level helpers of the test-set floor: words, overlap measures, and finding a string in a
document with exact character offsets (exact first, then after whitespace and case normalisation).

Words are ``\\w+`` tokens, lower-cased; content words drop scikit-learn's English stop words (the
judge floor's rule, :func:`lab.judge.baselines.content_words`, so the lexical grounded judge and
the filters count the same words).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lab.judge.baselines import content_words

_WORD = re.compile(r"\w+", re.UNICODE)

__all__ = ["content_words", "copy_ratio", "jaccard", "locate", "support", "words"]


def words(text: str) -> list[str]:
    """Lower-cased ``\\w+`` tokens of ``text``, in order."""
    return _WORD.findall(text.lower())


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| of two word collections (0.0 when both are empty)."""
    sa, sb = set(a), set(b)
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def support(text: str, context: str) -> float:
    """Share of ``text``'s content words found in ``context`` (1.0 when it has none)."""
    mine = content_words(text)
    return len(mine & content_words(context)) / len(mine) if mine else 1.0


def copy_ratio(question: str, excerpt: str) -> float:
    """Longest run of consecutive question words that occurs as consecutive words of ``excerpt``,
    divided by the question's word count (0.0 for a question without words).

    A question that is its excerpt's sentence turned round ("The program was established in what
    year?") scores near 1; a question in its own words scores low. Dynamic programming over the two
    word lists (longest common substring), O(len(q) * len(e)).
    """
    q, e = words(question), words(excerpt)
    if not q or not e:
        return 0.0
    best = 0
    prev = [0] * (len(e) + 1)
    for qi in range(1, len(q) + 1):
        cur = [0] * (len(e) + 1)
        for ei in range(1, len(e) + 1):
            if q[qi - 1] == e[ei - 1]:
                cur[ei] = prev[ei - 1] + 1
                best = max(best, cur[ei])
        prev = cur
    return best / len(q)


def _normalised(text: str) -> tuple[str, list[int]]:
    """``text`` case-folded with every whitespace run as one space, and for each character of the
    result the offset in ``text`` it came from."""
    out: list[str] = []
    where: list[int] = []
    in_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if not in_space and out:
                out.append(" ")
                where.append(i)
            in_space = True
            continue
        in_space = False
        folded = ch.casefold()
        out.extend(folded)
        where.extend([i] * len(folded))
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


_TRIM = " \t\r\n.,;:!?\"'`()[]*_“”‘’"


def locate(text: str, needle: str, *, start: int = 0, end: int | None = None) -> tuple[int, int, str] | None:
    """Where ``needle`` occurs in ``text[start:end]``: ``(begin, end, how)`` with offsets into
    ``text`` and ``how`` ``"exact"`` or ``"normalised"`` (case and whitespace runs ignored, the
    needle's surrounding punctuation trimmed); the first occurrence wins. None when it is not there
    or is empty."""
    end = len(text) if end is None else end
    if not needle.strip():
        return None
    at = text.find(needle, start, end)
    if at >= 0:
        return at, at + len(needle), "exact"
    trimmed = needle.strip(_TRIM)
    if trimmed:
        at = text.find(trimmed, start, end)
        if at >= 0:
            return at, at + len(trimmed), "exact"
    hay, where = _normalised(text[start:end])
    pin, _ = _normalised(trimmed or needle)
    if not pin:
        return None
    at = hay.find(pin)
    if at < 0:
        return None
    return start + where[at], start + where[at + len(pin) - 1] + 1, "normalised"
