"""The claim-support model: a cross-encoder trained on (evidence window, claim) pairs, for claim-level judging.

A whole-answer judge trained on HaluEval learns HaluEval's shortcut (a right answer is a span copied
from the passage) and flags nearly every real, reworded answer (issue 31). This trains the pair
scorer of :class:`lab.judge.claim_judge.ClaimLevelJudge` instead, on labelled answers of
:mod:`lab.judge.faithful_data` (faithful long-form answers written by a local generator, the same
answers with one planted error, paraphrases; labels and spans by construction):

1. every answer is planned exactly as the judge will plan it at judging time
   (:meth:`ClaimLevelJudge.plan` over a :class:`~lab.judge.claim_judge.TokenBudget` of the base
   model's tokenizer and ``max_length``): claims, and each claim's evidence windows;
2. a claim is UNSUPPORTED (label 1) when it overlaps a labelled hallucinated span, SUPPORTED (0) when
   its answer is labelled faithful; the other claims of a hallucinated answer (copies of its faithful
   twin's) are not used;
3. a claim of a faithful answer whose best window holds less than ``min_supported_overlap`` of its
   content words is not used as supported (``claims_unverified``): a small generator's "faithful"
   answers carry unsupported filler (a review of its answers found it in half of them), and such a
   claim labelled supported would teach the model to accept filler;
4. pairs: a supported claim with its best window (the most of its content words: the window the max
   over windows should find) -> 0, and with one window holding at most ``off_window_support`` of its
   content words -> 1 (a window that does not hold the evidence does not support the claim: that
   is what an error taken from another passage looks like to the judge); an unsupported claim with
   its best window -> 1 (the window the max over windows would find: the hard case; its other
   windows would only repeat the off-window lesson). A pair seen twice (a claim repeated in a
   paraphrase) is kept once.

:func:`train_claim_support` splits the answers by source (``group``, so an answer and its twins never
straddle the split), fine-tunes with :func:`lab.judge.trained.train_cross_encoder` on the pairs of
the training part, then chooses the ANSWER-level threshold on the validation part's answers judged
claim by claim (kappa-optimal; a claim is unsupported when the model's hallucination probability is
above it) and records it, with the answer-level validation agreement, in the model's ``meta.json``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import ClaimSupportSpec, TrainedJudgeSpec
from lab.data.halueval import JudgedItem, split_by_group
from lab.errors import DataError
from lab.judge.base import JudgeInput

#: The judge-stage name of the claim-support model (a grounded trained judge: ``claims:<this>``).
NAME = "claim-support-cross-encoder"


@dataclass
class ClaimPairs:
    """Training pairs (question, window as context, claim as answer) and their labels, with counts."""

    items: list[JudgeInput] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {
        "answers": 0, "answers_without_spans": 0, "claims_supported": 0, "claims_unsupported": 0,
        "claims_unused": 0, "claims_unverified": 0, "pairs_best_window": 0, "pairs_off_window": 0, "pairs_unsupported": 0,
        "duplicates": 0, "unplannable": 0, "multi_window_claims": 0})


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start < e and s < end for s, e in spans)


def claim_pairs(items: Sequence[JudgedItem], judge: Any, *, off_window_support: float = 0.5,
                min_supported_overlap: float = 0.5, seed: int = 0) -> ClaimPairs:
    """The pairs of labelled answers (see the module docstring). ``judge`` is the
    :class:`~lab.judge.claim_judge.ClaimLevelJudge` whose :meth:`plan` the pairs follow.
    A hallucinated answer without spans is counted (``answers_without_spans``), not used: which of
    its claims is wrong is unknown."""
    from lab.judge.baselines import lexical_support
    from lab.progress import bar

    out = ClaimPairs()
    seen: set[tuple[str, str, str]] = set()
    rng = random.Random(seed)

    def add(question: str, window: str, claim: str, label: int, what: str) -> None:
        key = (question, window, claim)
        if key in seen:
            out.counts["duplicates"] += 1
            return
        seen.add(key)
        out.items.append(JudgeInput(question=question, answer=claim, context=window))
        out.labels.append(label)
        out.counts[what] += 1

    for item in bar(items, desc="claim pairs", unit="answer"):
        if item.label == 1 and not item.spans:
            out.counts["answers_without_spans"] += 1
            continue
        plan = judge.plan(JudgeInput(question=item.question, answer=item.answer, context=item.context))
        if isinstance(plan, str):
            out.counts["unplannable"] += 1
            continue
        out.counts["answers"] += 1
        claims, windows, _ = plan
        for claim, ws in zip(claims, windows, strict=True):
            out.counts["multi_window_claims"] += len(ws) > 1
            if item.label == 1:
                if not _overlaps(claim.start, claim.end, item.spans or ()):
                    out.counts["claims_unused"] += 1
                    continue
                out.counts["claims_unsupported"] += 1
                support = [lexical_support(claim.text, w.text) for w in ws]
                add(item.question, ws[max(range(len(ws)), key=support.__getitem__)].text, claim.text, 1,
                    "pairs_unsupported")
                continue
            support = [lexical_support(claim.text, w.text) for w in ws]
            best = max(range(len(ws)), key=support.__getitem__)
            if support[best] < min_supported_overlap:
                out.counts["claims_unverified"] += 1
                continue
            out.counts["claims_supported"] += 1
            add(item.question, ws[best].text, claim.text, 0, "pairs_best_window")
            off = [w for w, s in zip(ws, support, strict=True) if s <= off_window_support]
            if off:
                add(item.question, rng.choice(off).text, claim.text, 1, "pairs_off_window")
    return out


def more_errors(records: Sequence[dict[str, Any]], sources: Sequence[Any], *, rounds: int = 2, seed: int = 1,
                kinds: Sequence[str] = ("number", "entity", "date", "other_passage", "negation")) -> list[dict[str, Any]]:
    """More planted errors in the faithful answers of ``records`` (make-data's ``faithful`` and
    ``paraphrase`` versions), by rules only (the generator wrote the answers once; a rule edit costs
    nothing): ``rounds`` more errors per answer with other seeds, so other claims get errors too. The
    records' sources (:mod:`lab.judge.faithful_sources`, by ``source_id``) give the passages and the
    passages not handed over. Returns only the new hallucinated records (ids ``.../x<seed>/<kind>``);
    an answer whose source is not in ``sources`` is left alone."""
    from lab.judge.faithful_data import source_records
    from lab.judge.perturb import Perturber
    from lab.progress import bar

    by_id = {s.id: s for s in sources}
    perturber = Perturber()
    out: list[dict[str, Any]] = []
    for r in bar(records, desc="more errors", unit="answer"):
        source = by_id.get(str(r.get("source_id")))
        if source is None or r.get("kind") not in ("faithful", "paraphrase"):
            continue
        for k in range(rounds):
            got, _ = source_records(source, [(f"{r['kind']}/x{seed + k}", r["answer"])], perturber, kinds=kinds,
                                    seed=seed + k)
            out += [{**g, "base": r["id"]} for g in got if g["label"] == "hallucinated"]
    return out


def training_items(spec: ClaimSupportSpec, root: str | Path = ".") -> list[JudgedItem]:
    """The answers of ``spec.data`` (checked by the labelled-answers reader) plus, with
    ``spec.more_errors``, that many rule-planted errors per faithful answer (:func:`more_errors`; the
    sources are make-data's, rebuilt from ``spec.source``/``part``/``data_seed``), and with
    ``spec.short_answers``, that many SQuAD training questions as short-answer twins
    (:func:`lab.judge.short_answers.short_answer_records`).

    Raises
    ------
    DataError
        The reader's errors (file, line, key), or a hallucination benchmark named as a source."""
    from lab.data.halueval import answer_item, read_judged
    from lab.io import read_jsonl
    from lab.judge.faithful_sources import check_training_path, sources

    paths = [check_training_path(Path(root) / p) for p in spec.data]
    items = [i for p in paths for i in read_judged(p, fmt="answers").items]
    if spec.more_errors:
        found = sources(spec.source, root, part=spec.part, seed=spec.data_seed)
        extra = more_errors([r for p in paths for r in read_jsonl(p)], found, rounds=spec.more_errors)
        items += [answer_item(r, n) for n, r in enumerate(extra, 1)]
    if spec.short_answers:
        from lab.judge.short_answers import short_answer_records

        short, _ = short_answer_records(root, n=spec.short_answers, part=spec.part, seed=spec.data_seed)
        items += [answer_item(r, n) for n, r in enumerate(short, 1)]
    return items


def train_or_keep(spec: ClaimSupportSpec, root: str | Path, folder: str | Path, *, seed: int = 0) -> Any:
    """The claim-support model in ``folder``: kept when its recorded training data, settings and code
    are the ones of ``spec`` now, else trained (:func:`train_claim_support`). Returns the
    :class:`~lab.judge.trained.CrossEncoderJudge`."""
    from lab.judge.trained import META, CrossEncoderJudge, training_code_id

    items = training_items(spec, root)
    want = {"data_sha256": items_digest(items), "spec": spec.model_dump(mode="json"), "seed": seed,
            "code": training_code_id()}
    meta = Path(folder) / META
    if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("claim_training") == want:
        return CrossEncoderJudge(folder)
    train_claim_support(items, folder, settings=spec.model, validation_fraction=spec.validation_fraction,
                        seed=seed, sources=list(spec.data), record={"claim_training": want})
    return CrossEncoderJudge(folder)


def items_digest(items: Sequence[JudgedItem]) -> str:
    """sha256 of what training reads of the answers (question, context, answer, label, spans)."""
    import hashlib

    text = json.dumps([[i.question, i.context, i.answer, i.label, i.spans] for i in items])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _planner(settings: TrainedJudgeSpec) -> Any:
    """A claim-level judge that only plans: the base model's tokenizer and ``max_length``."""
    from transformers import AutoTokenizer

    from lab.judge.claim_judge import ClaimLevelJudge, TokenBudget
    from lab.models import resolve

    tokenizer = AutoTokenizer.from_pretrained(str(resolve(settings.model).path))
    return ClaimLevelJudge(TokenBudget(tokenizer, settings.max_length, hints=settings.lexical_hints), name="plan")


def train_claim_support(items: Sequence[JudgedItem], out_dir: str | Path, *, settings: TrainedJudgeSpec | None = None,
                        validation_fraction: float = 0.2, seed: int = 0, name: str = NAME,
                        sources: Sequence[str] = (), record: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the claim-support model on labelled answers and write it to ``out_dir`` (see the module
    docstring); return its ``meta.json`` (``record`` added to it).

    Raises
    ------
    DataError
        No grounded answers, or a split that leaves one side without both labels."""
    from lab.judge.claim_judge import ClaimLevelJudge, CrossEncoderPairScorer
    from lab.judge.trained import META, CrossEncoderJudge, train_cross_encoder
    from lab.metrics.agreement import agreement, best_threshold

    settings = settings or TrainedJudgeSpec(max_length=256, epochs=2)
    grounded = [i for i in items if i.context]
    if not grounded:
        raise DataError("claim-support training needs answers with 'context' or 'contexts' (none given)")
    train, val = split_by_group(grounded, validation_fraction, seed=seed)
    if len({i.label for i in train}) < 2 or len({i.label for i in val}) < 2:
        raise DataError(f"the split by source left a side with one label ({len(train)} training, {len(val)} "
                        f"validation answers): give more sources")
    planner = _planner(settings)
    pairs = claim_pairs(train, planner, seed=seed)
    val_pairs = claim_pairs(val, planner, seed=seed)
    train_cross_encoder(pairs.items, pairs.labels, val_pairs.items, val_pairs.labels, task="grounded",
                        out_dir=out_dir, name=name, settings=settings, seed=seed, sources=sources)
    model = CrossEncoderJudge(out_dir, cache=False)
    judge = ClaimLevelJudge(CrossEncoderPairScorer(model), name=f"claims:{name}")
    got = judge.judge([JudgeInput(question=i.question, answer=i.answer, context=i.context) for i in val])
    scores = [j.score for j in got]
    labels = [i.label for i in val]
    kept = [(y, s) for y, s in zip(labels, scores, strict=True) if s is not None]
    threshold = best_threshold([y for y, _ in kept], [s for _, s in kept])
    answer_val = agreement([y for y, _ in kept], [int(s >= threshold) for _, s in kept])
    meta_path = Path(out_dir) / META
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta.update({
        "kind": "claim-support cross-encoder", "pair_threshold": meta["threshold"], "threshold": threshold,
        "threshold_rule": "kappa-optimal on the validation answers judged claim by claim "
                          "(an answer is hallucinated when a claim's best window is above it)",
        "pair_validation": meta["validation"],
        "validation": {"n": answer_val["n"], **{k: answer_val[k] for k in ("accuracy", "f1", "kappa")},
                       "unjudged": len(labels) - len(kept)},
        "answers": {"train": len(train), "validation": len(val)},
        "pairs": {"train": pairs.counts, "validation": val_pairs.counts}, **(record or {}),
    })
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(meta_path)
    return meta
