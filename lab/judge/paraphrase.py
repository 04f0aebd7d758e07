"""A rule-based faithful paraphrase: other words and another claim order, the same facts.

Where the generator cannot paraphrase (Qwen2.5-Coder 0.5B returned the text unchanged in the first
measured batch), :func:`rule_paraphrase` rewords an answer by rules that keep its meaning:

1. **Words**: lower-case words and phrases of a fixed table (:data:`SYNONYMS`: connectives, hedges
   and common verbs such as "approximately" -> "about", "however" -> "yet", "showed" ->
   "demonstrated", "the passage states" -> "the text says"; no word that is also a noun or needs
   another article), replaced whole-word, in one pass (a replacement is never replaced again); a
   sentence-initial capital is kept, a capitalised word inside a sentence (a name) is left alone, and
   the table holds no number.
2. **Order**: two neighbouring claims (not the first) swap places when neither, nor the claim after
   them, starts by pointing back ("It", "This", "They", "However"...).

A paraphrase needs at least two changes (words replaced, or a swap counting as one); with fewer it
is None. Deterministic under the ``random.Random`` passed in (which neighbours swap).
"""

from __future__ import annotations

import random
import re

from lab.judge.claims import split_claims

#: Meaning-preserving replacements (lower-case; phrases before their words).
SYNONYMS: dict[str, str] = {
    "in order to": "to", "due to": "because of", "because of": "owing to", "such as": "like",
    "according to": "as reported by", "known as": "called", "in addition": "additionally",
    "additionally": "in addition", "furthermore": "moreover", "moreover": "furthermore", "however": "yet",
    "therefore": "thus", "thus": "therefore", "approximately": "about", "roughly": "about",
    "significant": "notable", "significantly": "notably", "numerous": "many", "often": "frequently",
    "frequently": "often", "usually": "typically", "typically": "usually", "mostly": "largely",
    "largely": "mostly", "quickly": "rapidly", "rapidly": "quickly", "entire": "whole",
    "began": "started", "started": "began", "showed": "demonstrated", "demonstrated": "showed",
    "mentioned": "noted", "helped": "assisted", "obtained": "got", "purchased": "bought", "bought": "purchased",
    "the passage states": "the text says", "the passages state": "the texts say",
    "the passage mentions": "the text notes", "this indicates": "this shows", "responsible for": "in charge of",
}
_TABLE = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(SYNONYMS, key=len, reverse=True)) + r")\b",
                    re.IGNORECASE)
_BACK = re.compile(r"^(?:It|Its|He|His|She|Her|They|Their|This|These|That|Those|However|Also|Then|Both|"
                   r"The latter|The former|In addition|Additionally|Furthermore|Moreover|Therefore|Thus)\b")


def _reword(text: str) -> tuple[str, int]:
    """``text`` with :data:`SYNONYMS` applied once each, and how many replacements were made."""
    count = 0

    def swap(m: re.Match[str]) -> str:
        nonlocal count
        word = m.group(0)
        if word != word.lower() and not (word[0].isupper() and word[1:] == word[1:].lower()):
            return word   # "USED", "McDonald": not a table word in prose
        start = m.start()
        initial = word[0].isupper()
        if initial and start > 0 and not re.search(r"[.!?]\s+$|^\s*$", text[:start]):
            return word   # capitalised mid-sentence: part of a name
        count += 1
        new = SYNONYMS[word.lower()]
        return new[0].upper() + new[1:] if initial else new

    return _TABLE.sub(swap, text), count


def rule_paraphrase(answer: str, rng: random.Random, *, min_changes: int = 2) -> str | None:
    """``answer`` reworded by the module's rules, or None with fewer than ``min_changes`` changes."""
    claims = [c.text for c in split_claims(answer)]
    if not claims:
        return None
    slots = [i for i in range(1, len(claims) - 1)
             if not _BACK.match(claims[i]) and not _BACK.match(claims[i + 1])
             and (i + 2 >= len(claims) or not _BACK.match(claims[i + 2]))]
    swapped = 0
    if slots:
        i = rng.choice(slots)
        claims[i], claims[i + 1] = claims[i + 1], claims[i]
        swapped = 1
    text, count = _reword(" ".join(claims))
    return text if count + swapped >= min_changes else None
