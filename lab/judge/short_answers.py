"""Short answers with a planted wrong one, from SQuAD's training articles: claims of one phrase.

The claim-support model learns from long-form answers (:mod:`lab.judge.faithful_data`), whose claims
are sentences. A RAG answer is also often one phrase ("Denver Broncos") or one sentence, and the
judge then checks a claim whose words may all be in the passage while the answer is still wrong: the
passage names another team, year or person, and only the question tells them apart. This makes such
answers from a TRAINING source (SQuAD's ``train`` articles, :func:`lab.judge.faithful_sources.squad_sources`;
never a hallucination benchmark), labels by construction:

- ``short_span``: the question's gold answer (faithful) and, as its twin, another named entity or
  number of the same kind from the same passages (hallucinated: present in the evidence, wrong for
  the question; the hard case);
- ``short_sentence``: the passage sentence holding the gold answer (reworded by
  :func:`lab.judge.paraphrase.rule_paraphrase` where the rules apply) and the same sentence with the
  gold answer replaced by the wrong one (the replaced words are the span).

Faithful and hallucinated come in twins of about equal length, so length says nothing. A question
whose gold answer is not an entity or number of :data:`lab.judge.perturb.ENTITY_LABELS` with a
same-kind alternative in its passages gives nothing (counted).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

#: The record kinds this module writes.
KINDS = ("short_span", "short_sentence")


def _record(source: Any, rid: str, kind: str, answer: str, label: int, span: tuple[int, int] | None,
            base: str | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": rid, "source_id": source.id, "kind": kind, "question": source.question,
                           "contexts": list(source.passages), "answer": answer,
                           "label": "hallucinated" if label else "faithful",
                           "spans": [{"start": span[0], "end": span[1]}] if span else []}
    if base:
        rec["base"] = base
    return rec


def _find(text: str, phrase: str) -> int:
    """Where ``phrase`` starts in ``text`` as whole words ("Christ" not in "Christians"), or -1."""
    m = re.search(r"(?<!\w)" + re.escape(phrase) + r"(?!\w)", text)
    return m.start() if m else -1


def _sentence_with(passage: str, gold: str) -> tuple[str, int] | None:
    """The sentence of ``passage`` holding ``gold`` (whole words), and where ``gold`` starts in it."""
    from lab.chunking.sentence import sentence_spans

    at = _find(passage, gold)
    if at < 0:
        return None
    for a, b in sentence_spans(passage):
        if a <= at and at + len(gold) <= b:
            sentence = passage[a:b].strip()
            return sentence, _find(sentence, gold)
    return None


def short_answer_records(root: str | Path = ".", *, n: int = 500, part: str = "train", seed: int = 0,
                         nlp: Any = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Up to ``n`` SQuAD questions of ``part`` made into short-answer twins (see the module docstring):
    labelled-answers records (``id``, ``source_id``, ``kind``, ``base``, ``spans``) and counts.

    Raises
    ------
    DataError
        The SQuAD readers' errors (:func:`lab.judge.faithful_sources.sources`)."""
    from lab.data.squad import squad_questions
    from lab.judge.faithful_sources import SQUAD_FILES, check_training_path, sources
    from lab.judge.paraphrase import rule_paraphrase
    from lab.judge.perturb import ENTITY_LABELS
    from lab.progress import bar

    if nlp is None:
        from lab.models import load_spacy

        nlp = load_spacy()
    found = sources("squad", root, part=part, seed=seed)
    paragraphs, qa = (check_training_path(Path(root) / f) for f in SQUAD_FILES)
    _, questions = squad_questions(paragraphs, qa, None)
    gold_of = {q.id: q.answers for q in questions}
    order = sorted(found, key=lambda s: random.Random(f"{seed}:short:{s.id}").random())
    out: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for source in bar(order, desc="short answers", unit="question"):
        if counts["questions_used"] >= n:
            break
        answers = [a.strip() for a in gold_of.get(source.id, ()) if a.strip()]
        if not answers:
            counts["no_gold_answer"] += 1
            continue
        gold = answers[0]
        ents = [(e.text.strip(), e.label_) for p in source.passages for e in nlp(p).ents if e.label_ in ENTITY_LABELS]
        kind_of = {t: lab for t, lab in ents}
        label = kind_of.get(gold)
        if label is None:
            counts["gold_not_an_entity"] += 1
            continue
        accepted = {a.lower() for a in answers}
        wrong = sorted({t for t, lab in ents if lab == label and t.lower() not in accepted
                        and gold.lower() not in t.lower() and t.lower() not in gold.lower()})
        if not wrong:
            counts["no_alternative"] += 1
            continue
        rng = random.Random(f"{seed}:short:{source.id}")
        other = rng.choice(wrong)
        sid = source.id
        out += [_record(source, f"{sid}/short_span", "short_span", gold, 0, None, None),
                _record(source, f"{sid}/short_span/wrong", "short_span", other, 1, (0, len(other)),
                        f"{sid}/short_span")]
        counts["short_span"] += 2
        held = next((h for p in source.passages if (h := _sentence_with(p, gold))), None)
        if held is not None:
            sentence, at = held
            worded = rule_paraphrase(sentence, random.Random(f"{seed}:short-para:{sid}")) or sentence
            if _find(worded, gold) >= 0:
                sentence, at = worded, _find(worded, gold)
            bad = sentence[:at] + other + sentence[at + len(gold):]
            out += [_record(source, f"{sid}/short_sentence", "short_sentence", sentence, 0, None, None),
                    _record(source, f"{sid}/short_sentence/wrong", "short_sentence", bad, 1, (at, at + len(other)),
                            f"{sid}/short_sentence")]
            counts["short_sentence"] += 2
        else:
            counts["no_sentence"] += 1
        counts["questions_used"] += 1
    return out, dict(counts)
