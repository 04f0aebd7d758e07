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

# Each rule needs an attack indicator, not a trigger word (issue 32): everyday requests set a role
# ("You are now my Spanish tutor"), a format ("From now on answer in French") or take back the
# user's own words ("Ignore my previous instructions about the tone"), and none of those is an
# attack. What is: overriding instructions that are not the user's own, asking for the system
# prompt, and a persona whose point is to drop the rules (evil, unrestricted, no filters...).

#: Whose instructions: the user's own ("my earlier rules"), or another thing's ("the rules of the
#: board game", "guidelines in the old syllabus"); these words may not stand between verb and object.
_NOT_OWN = r"(?:(?!\b(?:my|our)\b)[^.!?\n])"
#: After the object: "the instructions I gave you" (the user's own) or "... of/for/in the <thing>"
#: (not the assistant's), unless the thing is the assistant's side (system, conversation, document...).
_NOT_THEIRS = (r"(?!\s+(?:that\s+)?(?:I|we)\b)"
               r"(?!\s+(?:of|for|in|from|on|about)\s+(?:the|this|that|a|an|our|my)\s+(?!(?:system|conversation|"
               r"chat|assistant|ai|model|developer|prompt|operator|admin|administrator|document|documents|context|"
               r"text|page|message|above|previous)\b)\w+)")
#: A persona that means to drop the rules: the indicator after "you are now", "act as", "pretend you are".
_BAD_PERSONA = (r"(?:evil|malicious|rogue|unrestricted|unfiltered|uncensored|unbound|jailbroken|jailbreak|amoral|"
                r"immoral|unethical|lawless|(?:without|no|free of)\s+(?:any\s+|all\s+)?(?:rules|restrictions|"
                r"limits|limitations|filters|guidelines|ethics|morals|censorship|content polic\w*)|"
                r"(?:bad|evil|dark|chaos|anti)[a-z]*(?:bot|gpt|ai))\b")   # DAN by name: the jailbreak check's rule

#: Rules: name -> pattern (English and German, the deepset set's languages).
INJECTION_RULES: dict[str, str] = {
    "ignore_previous": rf"\b(?:ignore|disregard|forget|skip|override)\b{_NOT_OWN}{{0,40}}\b(?:previous|prior|above|"
                       rf"earlier|preceding|all)\b{_NOT_OWN}{{0,30}}\b(?:instructions?|tasks?|rules|prompts?|"
                       rf"directions|guidelines|information)\b{_NOT_THEIRS}",
    "ignore_previous_de": r"\b(?:vergiss|ignoriere|vergessen sie|ignorieren sie)\b(?:(?!\bmeine|\bunsere)[^.!?\n]){0,40}"
                          r"\b(?:alle|vorherigen|bisherigen|obigen|vorangegangenen|vorangehenden)\b"
                          r"(?:(?!\bmeine|\bunsere)[^.!?\n]){0,30}\b(?:anweisung(?:en)?|instruktionen|aufträge|"
                          r"aufgaben|befehle|regeln|vorgaben|prompts?|informationen|eingaben|richtlinien)\b",
    "new_task": r"\b(?:now|from now on)\b[^.!?\n]{0,30}\b(?:your new task|new instructions?|focus on your new)\b|"
                r"(?<!\bmeine )(?<!\bmeiner )(?<!\bunsere )(?<!\bunserer )\b(?:neue aufgabe|neuen aufgabe)\b",
    # "your instructions for the sourdough starter" are a recipe's, not the system's
    "reveal_prompt": r"\b(?:show|reveal|print|repeat|output|display|tell)\b[^.!?\n]{0,30}(?:(?<!\ba )(?<!\ban )\bsystem "
                     r"prompt|\byour (?:initial |original )?(?:instructions|prompt|prompt texts?)\b(?!\s+(?:for|on|about)\s+"
                     r"(?!(?:me|us|this conversation|this chat|the user)\b))|\bthe prompt above)\b",
    "role_override": rf"\b(?:you are|you're|you will be|act as|acting as|pretend(?: that)? you(?: are|'re)?|"
                     rf"imagine(?: that)? you(?: are|'re)|from now on,? you(?: are|'re)?)\b[^.!?\n]{{0,80}}?\b{_BAD_PERSONA}|"
                     r"\byou(?: are|'re) now in (?:maintenance|debug|debugging|developer|dev|admin|administrator|god|"
                     r"root|sudo|test|testing|diagnostic|service|override|unrestricted|jailbreak) mode\b|"
                     r"\byou are no longer\b[^.!?\n]{0,30}\b(?:bound|restricted|limited by|an? (?:ai|assistant|language "
                     r"model|chatbot)|chatgpt|required to|obliged to|subject to|governed by|following|follow)\b|"
                     r"\bpretend(?: that)? you have no\b[^.!?\n]{0,20}\b(?:rules|restrictions|limits|filters|guidelines|"
                     r"ethics|morals|instructions|content polic\w*)\b|"
                     r"\bdu bist (?:jetzt|nun|ab jetzt|ab sofort)\b[^.!?\n]{0,40}\b(?:böse|bösartig|"
                     r"uneingeschränkt|ungefiltert|ohne (?:regeln|einschränkungen|filter|grenzen|zensur))",
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
