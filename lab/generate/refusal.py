"""What counts as a model declining to answer: the phrases, defined once.

The gateway's ``refusal`` guardrail (:class:`lab.guardrails.rules.Refusal`) acts on them, and the
fine-tune study uses the same check to measure how often a served (RAG) arm declines the test set's
unanswerable questions. They live at the generation floor so that a study measuring answers does
not import the guardrails package.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Phrases of a model declining (English); anchored near the start of the answer, where a refusal
#: sits, so an answer that merely quotes "I cannot" later on is not a refusal.
REFUSAL_PATTERNS = [
    r"\bI(?:'m| am) (?:sorry|afraid)\b",
    (r"\bI (?:can(?:no|')t|am unable to|won't|will not|must decline to|do not|don't) "
     r"(?:help|assist|provide|answer|comply|do that|share|fulfil|fulfill)"),
    r"\b(?:as an? (?:AI|language model))\b",
    r"\bI(?:'m| am) not able to\b",
    r"\b(?:cannot|can't) (?:help|assist) with (?:that|this)\b",
    r"\bthe (?:context|passages?|documents?) (?:do(?:es)? not|don't) (?:contain|mention|say)\b",
    r"\bI don't know\b",
]

#: How many leading characters are searched by default.
WINDOW = 160


def compile_patterns(patterns: Sequence[str] | None = None) -> list[re.Pattern[str]]:
    """``patterns`` (default :data:`REFUSAL_PATTERNS`) compiled case-insensitively."""
    return [re.compile(p, re.IGNORECASE) for p in (patterns or REFUSAL_PATTERNS)]


def refusal_reason(text: str, *, window: int = WINDOW, patterns: Sequence[re.Pattern[str]] | None = None) -> str | None:
    """Why ``text`` is a refusal (the phrase found in its first ``window`` characters, or "empty
    answer"), or None when it is not one."""
    head = text[:window]
    for p in patterns if patterns is not None else compile_patterns():
        m = p.search(head)
        if m:
            return f"refusal phrase {m.group(0)!r}"
    return None if head.strip() else "empty answer"
