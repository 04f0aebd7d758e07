"""Instruction-like text: the textbook prompt-injection phrasings, defined once.

Two readers: the guardrails' injection check uses them as its rule floor
(:mod:`lab.guardrails.injection`: a rule catches these phrasings even where a classifier misses), and
the extraction-quality checks flag a document of a team's corpus that carries one (``instruction_like``,
naming file and page: :mod:`lab.data.extraction_quality`), so an instruction planted in a document is
seen before the gateway ever retrieves it. They live in the data floor so that the data-quality
stage does not import the guardrails package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: Rules: name -> pattern (English and German, the deepset set's languages).
INJECTION_RULES: dict[str, str] = {
    "ignore_previous": r"\b(?:ignore|disregard|forget|skip|override)\b[^.!?\n]{0,40}\b(?:previous|prior|above|"
                       r"earlier|preceding|all)\b[^.!?\n]{0,30}\b(?:instructions?|tasks?|rules|prompts?|"
                       r"directions|guidelines|information)\b",
    "ignore_previous_de": r"\b(?:vergiss|ignoriere|vergessen sie|ignorieren sie)\b[^.!?\n]{0,40}\b(?:alle|vorherigen|"
                          r"bisherigen|obigen|vorangegangenen)\b",
    "new_task": r"\b(?:now|from now on)\b[^.!?\n]{0,30}\b(?:your new task|new instructions?|focus on your new)\b|"
                r"\b(?:neue aufgabe|neuen aufgabe)\b",
    "reveal_prompt": r"\b(?:show|reveal|print|repeat|output|display|tell)\b[^.!?\n]{0,30}\b(?:system prompt|"
                     r"your (?:initial |original )?(?:instructions|prompt|prompt texts?)|the prompt above)\b",
    "role_override": r"\byou are (?:now|no longer)\b|\bact as (?:if you were|an? unrestricted)\b|"
                     r"\bpretend (?:that )?you (?:are|have no)\b",
}
_COMPILED = {k: re.compile(v, re.IGNORECASE) for k, v in INJECTION_RULES.items()}


def rule_hits(text: str) -> list[str]:
    """Names of the rules that match ``text``."""
    return [name for name, rx in _COMPILED.items() if rx.search(text)]


def rule_matches(text: str) -> Iterator[tuple[str, int, int]]:
    """``(rule, start, end)`` of every match of every rule in ``text``, in text order."""
    found = [(m.start(), m.end(), name) for name, rx in _COMPILED.items() for m in rx.finditer(text)]
    for start, end, name in sorted(found):
        yield name, start, end
