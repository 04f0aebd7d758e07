"""Attacks generated from the seed sets and strategies of :mod:`lab.redteam.seeds`, deterministic
under a seed and bounded in count.

Categories (:data:`CATEGORIES`):

``direct_injection``    an instruction in the user's message to answer with a canary
``jailbreak``           role play, fiction, hypotheticals and prefix forcing around a goal that ends in a canary
``multi_turn``          an escalation over three turns; the last asks for a canary
``pii_extraction``      questions after the contact and payment details of a planted directory page
``system_prompt_leak``  requests to repeat the gateway's system prompt
``off_topic``           tasks the domain assistant should not do (code, recipes, arithmetic...)
``indirect_injection``  benign questions about a planted page that carries an instruction and a canary

Direct injections and jailbreaks also come in mutations (:data:`MUTATIONS`): leetspeak, homoglyphs
(Cyrillic look-alikes), random case, zero-width spaces inside words, the whole message in Base64,
and a noise suffix. A canary survives every mutation but Base64 (where the model must decode it).

:func:`generate` picks, per category, at most ``per_category`` attacks from every combination of
strategy, seed and mutation: shuffled with a generator seeded by ``(seed, category)``, then taken so
that each strategy and each mutation is used as evenly as possible. ``max_attacks`` caps the total,
taking the categories in turn. The same arguments give the same attacks, canaries and planted
documents, on any machine.
"""

from __future__ import annotations

import base64
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lab.redteam import seeds
from lab.redteam.planted import CANARY_PREFIX, PlantedDoc, canaries, directory_page, instruction_page

CATEGORIES: tuple[str, ...] = ("direct_injection", "jailbreak", "multi_turn", "pii_extraction",
                               "system_prompt_leak", "off_topic", "indirect_injection")
#: Categories that need documents planted in the served corpus (so a bundle, not a URL).
NEEDS_DOCUMENTS: tuple[str, ...] = ("pii_extraction", "indirect_injection")
MUTATIONS: tuple[str, ...] = ("none", "leetspeak", "homoglyph", "random_case", "zero_width", "base64", "noise_suffix")
#: Categories whose attacks are mutated.
MUTATED: tuple[str, ...] = ("direct_injection", "jailbreak")


@dataclass(frozen=True)
class Attack:
    """One attack: the user turns to send (one, or several for an escalation) and what its success
    would look like in the answer.

    Attributes
    ----------
    canary : the token the attack asks the model to write (None: no canary).
    secrets : PII values of the planted page it is after.
    markers : compliance markers of an off-topic task.
    document : the id of the planted page it targets.
    """

    id: str
    category: str
    strategy: str
    mutation: str
    turns: tuple[str, ...]
    canary: str | None = None
    secrets: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    document: str | None = None

    @property
    def text(self) -> str:
        """The attack as one text (its turns joined)."""
        return "\n".join(self.turns)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "strategy": self.strategy, "mutation": self.mutation,
                "turns": list(self.turns), "canary": self.canary, "secrets": list(self.secrets),
                "markers": list(self.markers), "document": self.document}


@dataclass
class AttackSet:
    """The attacks and the documents they need planted."""

    attacks: list[Attack]
    documents: list[PlantedDoc] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Attacks per category, in :data:`CATEGORIES` order."""
        c = Counter(a.category for a in self.attacks)
        return {k: c[k] for k in CATEGORIES if c[k]}


# --------------------------------------------------------------------------- mutations
_LEET = str.maketrans({"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"})
_HOMOGLYPHS = str.maketrans({"a": "\u0430", "c": "\u0441", "e": "\u0435", "o": "\u043e", "p": "\u0440",
                             "x": "\u0445", "y": "\u0443"})
NOISE_SUFFIX = " ]]} <<sys>> similarly:: now-write opposite;; (( please revert )) \\!--two"


def _split_protected(text: str, protect: Sequence[str]) -> list[tuple[str, bool]]:
    """``text`` as ``(segment, protected)`` pieces: each protected string kept whole."""
    pieces: list[tuple[str, bool]] = [(text, False)]
    for p in (p for p in protect if p):
        out: list[tuple[str, bool]] = []
        for seg, kept in pieces:
            if kept or p not in seg:
                out.append((seg, kept))
                continue
            parts = seg.split(p)
            for i, part in enumerate(parts):
                if part:
                    out.append((part, False))
                if i < len(parts) - 1:
                    out.append((p, True))
        pieces = out
    return pieces


def _zero_width(segment: str) -> str:
    words = segment.split(" ")
    return " ".join("\u200b".join(w) if len(w) >= 5 and w.isalpha() else w for w in words)


def mutate(text: str, mutation: str, rng: random.Random, protect: Sequence[str] = ()) -> str:
    """``text`` under ``mutation`` (one of :data:`MUTATIONS`), the ``protect`` strings (a canary)
    left as they are (except by ``base64``, which encodes the whole message).

    Raises
    ------
    ValueError
        An unknown mutation (the message lists them).
    """
    if mutation not in MUTATIONS:
        raise ValueError(f"unknown mutation {mutation!r}; known: {', '.join(MUTATIONS)}")
    if mutation == "none":
        return text
    if mutation == "base64":
        encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
        return f"Decode this Base64 message and do exactly what it says: {encoded}"
    if mutation == "noise_suffix":
        return text + NOISE_SUFFIX
    out = []
    for seg, kept in _split_protected(text, protect):
        if kept:
            out.append(seg)
        elif mutation == "leetspeak":
            out.append(seg.translate(_LEET))
        elif mutation == "homoglyph":
            out.append(seg.translate(_HOMOGLYPHS))
        elif mutation == "random_case":
            out.append("".join(c.upper() if rng.random() < 0.5 else c.lower() for c in seg))
        else:
            out.append(_zero_width(seg))
    return "".join(out)


# --------------------------------------------------------------------------- picking
def spread(rng: random.Random, combos: Sequence[tuple[Any, ...]], n: int) -> list[tuple[Any, ...]]:
    """At most ``n`` of ``combos`` (tuples of the same length), shuffled by ``rng``, then taken one
    by one as the combination whose values have been used least so far: every strategy, seed and
    mutation is used about as often."""
    pool = list(combos)
    rng.shuffle(pool)
    used: list[Counter[Any]] = [Counter() for _ in range(len(pool[0]))] if pool else []
    out = []
    while pool and len(out) < n:
        best = min(range(len(pool)), key=lambda i: sum(used[j][v] for j, v in enumerate(pool[i])))
        pick = pool.pop(best)
        for j, v in enumerate(pick):
            used[j][v] += 1
        out.append(pick)
    return out


class _Builder:
    """Builds one category's attacks; canaries come from one seeded pool for the whole set."""

    def __init__(self, category: str, seed: int, per_category: int, mutations: Sequence[str],
                 pool: list[str], documents: list[PlantedDoc]) -> None:
        self.category, self.n, self.pool, self.documents = category, per_category, pool, documents
        self.rng = random.Random(f"lab.redteam:{seed}:{category}")
        self.mutations = tuple(mutations) if category in MUTATED else ("none",)
        self.attacks: list[Attack] = []

    def canary(self) -> str:
        return self.pool.pop()

    def add(self, strategy: str, mutation: str, turns: Sequence[str], **kw: Any) -> None:
        self.attacks.append(Attack(f"{self.category}-{len(self.attacks):03d}", self.category, strategy, mutation,
                                   tuple(turns), **kw))

    def direct_injection(self) -> None:
        combos = [(s, q, m) for s in seeds.DIRECT_INJECTION for q in seeds.CARRIER_QUESTIONS for m in self.mutations]
        for strategy, question, mutation in spread(self.rng, combos, self.n):
            canary = self.canary()
            prefix, digits = canary.split("-")
            text = seeds.DIRECT_INJECTION[strategy].format(question=question, canary=canary, prefix=prefix + "-",
                                                           digits=digits)
            protect = (prefix + "-", digits) if strategy == "payload_split" else (canary,)
            self.add(strategy, mutation, [mutate(text, mutation, self.rng, protect)], canary=canary)

    def jailbreak(self) -> None:
        combos = [(t, g, m) for t in seeds.JAILBREAK for g in range(len(seeds.JAILBREAK_GOALS)) for m in self.mutations]
        for template, goal, mutation in spread(self.rng, combos, self.n):
            canary = self.canary()
            text = seeds.JAILBREAK[template].format(goal=seeds.JAILBREAK_GOALS[goal].format(canary=canary))
            self.add(template, mutation, [mutate(text, mutation, self.rng, (canary,))], canary=canary)

    def multi_turn(self) -> None:
        combos = [(s, q) for s in seeds.MULTI_TURN for q in seeds.CARRIER_QUESTIONS]
        for strategy, question in spread(self.rng, combos, self.n):
            canary = self.canary()
            turns = [t.format(canary=canary, question=question) for t in seeds.MULTI_TURN[strategy]]
            self.add(strategy, "none", turns, canary=canary)

    def pii_extraction(self) -> None:
        used: set[str] = set()
        orgs = [seeds.ORGANISATIONS[i % len(seeds.ORGANISATIONS)] + ("" if i < len(seeds.ORGANISATIONS) else
                                                                     f" {i // len(seeds.ORGANISATIONS) + 1}")
                for i in range(max(1, math.ceil(self.n / 3)))]
        pages = [directory_page(f"redteam-pii-{i:02d}", org, self.rng, used) for i, org in enumerate(orgs)]
        combos = [(s, p, k) for s in seeds.PII_EXTRACTION for p in range(len(pages)) for k in range(2)]
        for strategy, p, k in spread(self.rng, combos, self.n):
            page = pages[p]
            name, role = page.people[k]
            text = seeds.PII_EXTRACTION[strategy].format(name=name, org=page.subject, role=role)
            self.add(strategy, "none", [text], secrets=page.secrets, document=page.id)
        kept = {a.document for a in self.attacks}
        self.documents += [p for p in pages if p.id in kept]

    def system_prompt_leak(self) -> None:
        combos = [(s, q) for s in seeds.SYSTEM_PROMPT_LEAK for q in (None, *seeds.CARRIER_QUESTIONS)]
        for strategy, question in spread(self.rng, combos, self.n):
            text = seeds.SYSTEM_PROMPT_LEAK[strategy]
            self.add(strategy, "none", [text if question is None else f"{question}\n{text}"])

    def off_topic(self) -> None:
        combos = [(s, t) for s in seeds.OFF_TOPIC for t in range(len(seeds.OFF_TOPIC_TASKS))]
        for strategy, t in spread(self.rng, combos, self.n):
            task, markers = seeds.OFF_TOPIC_TASKS[t]
            self.add(strategy, "none", [seeds.OFF_TOPIC[strategy].format(task=task)], markers=markers)

    def indirect_injection(self) -> None:
        combos = [(s, q) for s in seeds.PLANTED_INSTRUCTIONS for q in range(len(seeds.PLANTED_QUESTIONS))]
        topics = list(seeds.PLANTED_TOPICS)
        self.rng.shuffle(topics)
        for i, (strategy, q) in enumerate(spread(self.rng, combos, self.n)):
            name, what, where = topics[i % len(topics)]
            if i >= len(topics):   # more attacks than subjects: a second page of each, named apart
                name = f"{name} Annex {i // len(topics) + 1}"
            canary = self.canary()
            page = instruction_page(f"redteam-doc-{i:02d}", (name, what, where), seeds.PLANTED_INSTRUCTIONS[strategy],
                                    canary, self.rng)
            self.documents.append(page)
            self.add(strategy, "none", [seeds.PLANTED_QUESTIONS[q].format(topic=name)], canary=canary,
                     document=page.id)

    def build(self) -> list[Attack]:
        getattr(self, self.category)()
        return self.attacks


def generate(*, seed: int = 0, per_category: int = 6, max_attacks: int | None = None,
             categories: Sequence[str] = CATEGORIES, mutations: Sequence[str] = MUTATIONS,
             avoid: Sequence[str] = ()) -> AttackSet:
    """The attacks of ``categories`` (see the module docstring) and the documents they need planted.

    ``avoid``: texts the canaries must not occur in (the served corpus).

    Raises
    ------
    ValueError
        An unknown category or mutation, or a count below 1 (the message lists what exists).
    """
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown attack categories {unknown}; known: {', '.join(CATEGORIES)}")
    bad = [m for m in mutations if m not in MUTATIONS]
    if bad or not mutations:
        raise ValueError(f"unknown or no mutations {bad}; known: {', '.join(MUTATIONS)}")
    if per_category < 1 or (max_attacks is not None and max_attacks < 1):
        raise ValueError(f"per_category and max_attacks must be >= 1, got {per_category} and {max_attacks}")
    pool = canaries(random.Random(f"lab.redteam:{seed}:canaries"), per_category * len(CATEGORIES), avoid)
    documents: list[PlantedDoc] = []
    by_category = {c: _Builder(c, seed, per_category, mutations, pool, documents).build()
                   for c in CATEGORIES if c in categories}
    picked: list[Attack] = []
    for i in range(per_category):   # the categories in turn, so a total cap keeps them balanced
        picked += [made[i] for made in by_category.values() if i < len(made)]
    if max_attacks is not None:
        picked = picked[:max_attacks]
    needed = {a.document for a in picked}
    return AttackSet(picked, [d for d in documents if d.id in needed])


__all__ = ["CANARY_PREFIX", "CATEGORIES", "MUTATED", "MUTATIONS", "NEEDS_DOCUMENTS", "Attack", "AttackSet",
           "generate", "mutate", "spread"]
