"""Controlled errors planted in a faithful answer, one claim at a time, labels by construction.

A faithful long-form answer (written from passages by a local generator, :mod:`lab.judge.faithful_data`)
gets exactly ONE of its claims (:func:`lab.judge.claims.split_claims`, the claim-level judge's split)
changed so that the passages no longer support it:

``number``         a number changed (``42`` -> ``57``, ``3.5`` -> ``4.1``, ``seven`` -> ``nine``): same
                   digit count, never a number the passages contain; years are ``date``'s
``entity``         a named entity (spaCy's NER: person, organisation, place, nationality, work, event...)
                   replaced by another of the same type, half the time from the passages themselves
                   (lexically supported, wrong: the hard case), else from other passages; never one
                   the claim already holds
``date``           a year moved by 1-12 (not to a year the passages hold) or a month swapped
``other_passage``  the claim replaced by a sentence of ANOTHER passage (not one the answer was grounded
                   in; most of its content words absent from the passages), the closest in length
``addition``       the claim rewritten with one unsupported detail added (by the generator, see
                   :class:`Perturber`'s ``add``; without one, a clause of another passage is appended),
                   and, to keep the length, another claim (not the first, not one a pronoun refers
                   back to) left out: an omission keeps an answer faithful
``negation``       the claim's main verb negated ("was" -> "was not", "founded" -> "did not found"), or
                   an existing negation removed

Every perturbation is checked: the new answer splits into the same claims as the old one except the
perturbed one (an ``addition`` also lacks the claim it left out), and ``answer[start:end]`` is that
claim; one that fails the check is not returned. A kind that finds nothing to change in any claim
returns None (``not applicable``). All choices come from the ``random.Random`` passed in: the same
seed gives the same perturbations.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.errors import ConfigError
from lab.judge.claims import Claim, split_claims

KINDS = ("number", "entity", "date", "other_passage", "addition", "negation")
#: spaCy entity types an ``entity`` swap replaces (dates and numbers are ``date``'s and ``number``'s).
ENTITY_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "WORK_OF_ART", "PRODUCT",
                           "LANGUAGE"})
_YEAR = re.compile(r"(?<![\d.,])(1[0-9]{3}|20[0-9]{2})(?![\d]|[.,]\d)")
#: A number in digits (thousands commas and decimals included; ``date`` handles 4-digit years).
NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w]|[.,]\d)|(?<![\w.,])\d+(?:\.\d+)?(?![\w]|[.,]\d)")
_NUMBER_WORDS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_MONTH = re.compile(r"\b(" + "|".join(MONTHS[:4] + MONTHS[5:]) + r")\b")   # "May" is too often a verb
_PRONOUN_START = re.compile(r"^(?:It|He|She|They|This|These|That|Those|Its|His|Her|Their|Both|The latter)\b")
_WORD = re.compile(r"\w+")
_LOWER_FIRST = frozenset({"The", "A", "An", "It", "Its", "This", "These", "That", "Those", "They", "Their", "He",
                          "His", "She", "Her", "In", "On", "At", "By", "For", "After", "Before", "During", "Some",
                          "Many", "Most", "One", "There"})


@dataclass(frozen=True)
class Perturbation:
    """One planted error: ``answer[start:end]`` is the changed claim (label 1 by construction)."""

    kind: str
    answer: str
    start: int
    end: int
    before: str                                   # the claim as the faithful answer had it
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def claim(self) -> str:
        return self.answer[self.start:self.end]

    def span(self) -> dict[str, int]:
        return {"start": self.start, "end": self.end}


def words(text: str) -> int:
    """Length in ``\\w+`` words (what length balance is measured in)."""
    return len(_WORD.findall(text))


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _bare(name: str) -> str:
    """An entity's text without a possessive ``'s`` (spaCy's small model sometimes includes it)."""
    return name[:-2] if name.endswith(("'s", "\u2019s")) else name


def _has_token(text: str, token: str) -> bool:
    """``token`` occurs in ``text`` as a whole token (not inside a longer number or word)."""
    return re.search(rf"(?<![\w.,]){re.escape(token)}(?![\w]|[.,]\d)", text, re.IGNORECASE) is not None


def _closest(rng: random.Random, options: Sequence[str], target: int, *, slack: float = 0.15,
             at_least: int = 6) -> str:
    """One of ``options`` (rng's choice) within ``max(at_least, slack x target)`` characters of ``target``
    characters long; the closest one when none is."""
    ranked = sorted(dict.fromkeys(options), key=lambda o: (abs(len(o) - target), o))
    near = [o for o in ranked if abs(len(o) - target) <= max(at_least, slack * target)]
    return rng.choice(near) if near else ranked[0]


def _other_number(token: str, rng: random.Random, passages: str) -> str | None:
    if token.lower() in _NUMBER_WORDS:
        options = [w for w in _NUMBER_WORDS if w != token.lower() and not _has_token(passages, w)]
        if not options:
            return None
        new = rng.choice(options)
        return new.capitalize() if token[0].isupper() else new
    commas, plain = "," in token, token.replace(",", "")
    whole, _, frac = plain.partition(".")
    value = int(whole + frac)   # decimals change in their last digits: same number of places
    for _ in range(30):
        if value < 10:
            new_value = rng.randint(1, 9)
        else:
            new_value = round(value * (1 + rng.choice((-1, 1)) * rng.uniform(0.15, 0.6)))
        digits = str(new_value)
        if new_value == value or len(digits) != len(str(value)):
            continue
        if frac:
            digits = digits.zfill(len(frac) + 1)
            text = f"{digits[:-len(frac)]}.{digits[-len(frac):]}"
        else:
            text = f"{new_value:,}" if commas else digits
        if not _has_token(passages, text):
            return text
    return None


class Perturber:
    """Plants one error of a given kind into an answer (see the module docstring).

    Parameters
    ----------
    nlp : a spaCy pipeline (``entity`` and ``negation``); default: loaded on first need
        (:func:`lab.models.load_spacy`, the model store's en_core_web_sm).
    add : ``add(claim, passages) -> str | None``: the claim rewritten with one detail the passages do
        not hold (:meth:`lab.judge.faithful_data.GeneratorWriter.add_detail`); None: ``addition``
        appends a clause of another passage instead.
    min_claim_words : the claim split's merge rule (the claim-level judge's default, 3).
    add_tries : claims ``add`` is asked about, at most, per answer (each is a generation).
    """

    def __init__(self, *, nlp: Any = None, add: Callable[[str, Sequence[str]], str | None] | None = None,
                 min_claim_words: int = 3, add_tries: int = 2) -> None:
        self._nlp = nlp
        self.add = add
        self.add_tries = add_tries
        self.min_claim_words = min_claim_words
        self._ents: dict[str, list[tuple[str, str]]] = {}

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            from lab.models import load_spacy

            self._nlp = load_spacy()
        return self._nlp

    def entities(self, text: str) -> list[tuple[str, str]]:
        """``(text, label)`` of the named entities of ``text`` of :data:`ENTITY_LABELS` (cached)."""
        if text not in self._ents:
            self._ents[text] = [(_bare(e.text), e.label_) for e in self.nlp(text).ents if e.label_ in ENTITY_LABELS]
        return self._ents[text]

    def claims(self, answer: str) -> list[Claim]:
        return split_claims(answer, min_words=self.min_claim_words)

    # ------------------------------------------------------------------ the one entry point
    def perturb(self, answer: str, kind: str, *, passages: Sequence[str], others: Sequence[str] = (),
                rng: random.Random) -> Perturbation | None:
        """``answer`` with one error of ``kind``, or None where the kind finds nothing to change.

        ``passages`` are the texts the answer was written from; ``others`` passages it was not
        (the source of ``other_passage`` sentences and of entities from elsewhere)."""
        if kind not in KINDS:
            raise ConfigError(f"unknown perturbation {kind!r}; known: {', '.join(KINDS)}")
        claims = self.claims(answer)
        order = list(range(len(claims)))
        rng.shuffle(order)
        context = "\n\n".join(passages)
        if kind == "addition" and self.add is not None:
            order = order[:self.add_tries]   # each try is a generation: a few claims, not all
        for i in order:
            if kind == "addition":
                got = self._addition(answer, claims, i, passages, others, rng)
            else:
                change = getattr(self, f"_{kind}")(claims[i].text, context, others, rng)
                got = None if change is None else self._splice(answer, claims, i, change[0], kind, change[1])
            if got is not None:
                return got
        return None

    # ------------------------------------------------------------------ splicing, checked
    def _splice(self, answer: str, claims: list[Claim], i: int, new: str, kind: str, detail: dict[str, Any],
                drop: int | None = None) -> Perturbation | None:
        """``answer`` with claim ``i`` replaced by ``new`` (and claim ``drop`` left out), if the result
        splits into the old claims with exactly that change."""
        new = new.strip()
        if not new or _norm(new) == _norm(claims[i].text):
            return None
        ends = [0] + [c.end for c in claims[:-1]]
        gaps = [answer[e:c.start] for e, c in zip(ends, claims, strict=True)]
        texts = [new if k == i else c.text for k, c in enumerate(claims)]
        keep = list(range(len(claims)))
        if drop is not None:   # the claim and the gap after it go (the gap before it, for the last claim)
            keep.remove(drop)
            gaps.pop(drop + 1 if drop + 1 < len(claims) else drop)
            texts.pop(drop)
        out, start = "", -1
        for gap, k, text in zip(gaps, keep, texts, strict=True):
            out += gap
            if k == i:
                start = len(out)
            out += text
        out += answer[claims[-1].end:]
        end = start + len(new)
        want = texts
        if [c.text for c in self.claims(out)] != want or out[start:end] != new:
            return None
        return Perturbation(kind, out, start, end, claims[i].text, detail)

    # ------------------------------------------------------------------ the kinds: (new claim, detail)
    def _number(self, claim: str, context: str, others: Sequence[str], rng: random.Random
                ) -> tuple[str, dict[str, Any]] | None:
        found = [m for m in NUMBER.finditer(claim) if not _YEAR.fullmatch(m.group())]
        found += list(_NUMBER_WORD.finditer(claim))
        rng.shuffle(found)
        for m in found:
            new = _other_number(m.group(), rng, context)
            if new is not None:
                return claim[:m.start()] + new + claim[m.end():], {"from": m.group(), "to": new}
        return None

    def _date(self, claim: str, context: str, others: Sequence[str], rng: random.Random
              ) -> tuple[str, dict[str, Any]] | None:
        found = list(_YEAR.finditer(claim)) + list(_MONTH.finditer(claim))
        rng.shuffle(found)
        for m in found:
            old = m.group()
            if old.isdigit():
                options = [str(int(old) + s * d) for s in (-1, 1) for d in range(1, 13)]
                options = [y for y in options if int(y) <= 2099 and not _has_token(context, y)]
            else:
                options = [mo for mo in MONTHS if mo != old and mo not in context]
            if options:
                new = rng.choice(options)
                return claim[:m.start()] + new + claim[m.end():], {"from": old, "to": new}
        return None

    def _entity(self, claim: str, context: str, others: Sequence[str], rng: random.Random
                ) -> tuple[str, dict[str, Any]] | None:
        ents = [e for e in self.nlp(claim).ents if e.label_ in ENTITY_LABELS]
        rng.shuffle(ents)
        held = _norm(claim)
        for e in ents:
            name = _bare(e.text)   # a possessive stays: "Rand's" -> "Clark's"
            end = e.start_char + len(name)

            def fits(other: str, name: str = name) -> bool:
                n = _norm(other)
                return bool(n) and n not in held and _norm(name) not in n
            inside = [t for t, lab in self.entities(context) if lab == e.label_ and fits(t)]
            outside = [t for p in others for t, lab in self.entities(p) if lab == e.label_ and fits(t)
                       and _norm(t) not in _norm(context)]
            pools = [("passages", inside), ("other passages", outside)]
            if rng.random() < 0.5:
                pools.reverse()
            for where, pool in pools:
                if pool:
                    new = _closest(rng, pool, len(name))
                    return (claim[:e.start_char] + new + claim[end:],
                            {"from": name, "to": new, "type": e.label_, "from_where": where})
        return None

    def _negation(self, claim: str, context: str, others: Sequence[str], rng: random.Random
                  ) -> tuple[str, dict[str, Any]] | None:
        doc = self.nlp(claim)
        neg = next((t for t in doc if t.dep_ == "neg"), None)
        if neg is not None:   # remove an existing negation
            if neg.text.lower() == "n't":
                head = doc[neg.i - 1]
                base = {"ca": "can", "wo": "will", "sha": "shall"}.get(head.text.lower(), head.text)
                s, e = head.idx, neg.idx + len(neg.text)
                return claim[:s] + base + claim[e:], {"from": claim[s:e], "to": base}
            s, e = neg.idx, neg.idx + len(neg.text)
            e += len(claim[e:]) - len(claim[e:].lstrip(" "))
            return claim[:s] + claim[e:], {"from": neg.text, "to": ""}
        root = next((t for t in doc if t.dep_ == "ROOT"), None)
        if root is None or root.pos_ not in ("VERB", "AUX"):
            return None
        aux = sorted((c for c in root.children if c.dep_ in ("aux", "auxpass")), key=lambda t: t.i)
        pivot = aux[0] if aux else root if root.lemma_ == "be" or root.tag_ == "MD" else None
        if pivot is not None:
            at = pivot.idx + len(pivot.text)
            return claim[:at] + " not" + claim[at:], {"from": pivot.text, "to": f"{pivot.text} not"}
        do = {"VBD": "did", "VBZ": "does", "VBP": "do"}.get(root.tag_)
        if do is None or root.i == 0:
            return None
        new = f"{do} not {root.lemma_}"
        return claim[:root.idx] + new + claim[root.idx + len(root.text):], {"from": root.text, "to": new}

    def _foreign_sentences(self, context: str, others: Sequence[str]) -> list[str]:
        """Sentences of ``others`` that read as a claim and that the passages mostly do not support."""
        from lab.judge.baselines import lexical_support

        out = []
        for p in others:
            for c in self.claims(p):
                text = c.text
                if "\n" not in text and text[-1:] in ".!?" and words(text) >= 6 \
                        and lexical_support(text, context) < 0.5:
                    out.append(text)
        return out

    def _other_passage(self, claim: str, context: str, others: Sequence[str], rng: random.Random
                       ) -> tuple[str, dict[str, Any]] | None:
        found = self._foreign_sentences(context, others)
        if not found:
            return None
        new = _closest(rng, found, len(claim))
        return new, {"from": claim, "to": new}

    def _addition(self, answer: str, claims: list[Claim], i: int, passages: Sequence[str],
                  others: Sequence[str], rng: random.Random) -> Perturbation | None:
        from lab.judge.baselines import content_words

        context = "\n\n".join(passages)
        claim = claims[i].text
        if self.add is not None:
            new, source = self.add(claim, passages), "generator"
            if new is None:
                return None
            new = new.strip()
            added = content_words(new) - content_words(claim) - content_words(context)
            kept = content_words(claim) & content_words(new)
            if len(added) < 2 or len(kept) < 0.8 * len(content_words(claim)):
                return None   # nothing unsupported added, or the claim itself rewritten away
        else:
            found = self._foreign_sentences(context, others)
            if not found or claim[-1:] not in ".!?":
                return None
            extra = _closest(rng, found, 60)
            first, rest = extra.split(" ", 1) if " " in extra else (extra, "")
            if first in _LOWER_FIRST:   # a function word, not a name: lower-case it mid-sentence
                first = first.lower()
            new, source = f"{claim[:-1]}, and {first} {rest}".rstrip(), "other passage"
        growth = len(new) - len(claim)
        options = [k for k in range(1, len(claims)) if k != i
                   and not (k + 1 < len(claims) and _PRONOUN_START.match(claims[k + 1].text))]
        if not options:
            return None
        drop = min(options, key=lambda k: (abs(len(claims[k].text) - growth), k))
        return self._splice(answer, claims, i, new, "addition",
                            {"from": claim, "to": new, "source": source, "left_out": claims[drop].text}, drop=drop)
