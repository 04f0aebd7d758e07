"""The winner rule: which fine-tune arm the export stage serves.

Arms that did not run or have no score for the metric are dropped with their reason; the best arm
by the metric's mean is found; every arm whose 95% bootstrap CI overlaps the best's CI is a
candidate (the data cannot tell them apart); among candidates the cheapest to serve wins, then the
better mean, then the arm order of the study. The cost (``export.cost``) is by default the tokens
the server processes per question (the prompt's mean tokens plus the answer's), counted from the
study's own outputs: deterministic, so the same predictions always export the same arm.
``relative_cost`` (the study's measured wall time over zero-shot's) is the alternative; a wall time
is noisy (the lora_rag arm's inference took 43 s and 101 s on two days here) and flipped the
choice between rag and lora_rag. The rule is recorded in the bundle (``bundle.json['choice']``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lab.errors import LabError


class ExportError(LabError):
    """No arm can be exported (the message says why for each), or its model cannot be found."""


@dataclass
class ArmScore:
    """One arm's metric over the held-out questions, with its CI and serving cost."""

    arm: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    cost: float | None             # the measure of ``ArmChoice.cost_measure`` (lower is cheaper)
    excluded: str | None = None


@dataclass
class ArmChoice:
    """The chosen arm, the candidates the rule compared and every arm's score."""

    arm: str
    metric: str
    mode: str
    best: str
    candidates: list[str]
    rule: str
    scores: list[ArmScore] = field(default_factory=list)
    cost_measure: str = "tokens"   # what ArmScore.cost counts (see :data:`COST_MEASURES`)

    def to_dict(self) -> dict[str, Any]:
        """The choice as JSON-ready values (``bundle.json['choice']``)."""
        return {**asdict(self), "scores": [asdict(s) for s in self.scores]}


RULE = ("best mean; arms whose 95% CI overlaps the best's are candidates; the cheapest candidate to serve "
        "(cost_measure) wins, then the better mean, then study order")

#: Cost measures of the winner rule: ``tokens`` (prompt + answer tokens per question, from the
#: study's outputs) and ``relative_cost`` (the study's measured wall time over zero-shot's).
COST_MEASURES = ("tokens", "relative_cost")


def arm_costs(table: Any, predictions: Mapping[str, Sequence[Mapping[str, Any]]],
              measure: str = "tokens") -> dict[str, float | None]:
    """Each arm's serving cost from the study's ``results.csv`` (a DataFrame) by ``measure``; None
    where the table lacks the figures (the arm then loses every cost tie)."""
    if measure not in COST_MEASURES:
        raise ExportError(f"export cost {measure!r} is unknown; choose one of {', '.join(COST_MEASURES)}")
    need = ("tokens_in_mean", "tokens_out_total") if measure == "tokens" else ("relative_cost",)
    if table is None or "arm" not in table or any(c not in table for c in need):
        return {}
    out: dict[str, float | None] = {}
    for rec in table.to_dict("records"):
        arm = str(rec["arm"])
        vals = [rec[c] for c in need]
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
            out[arm] = None
        elif measure == "tokens":
            n = len(predictions.get(arm, []))
            out[arm] = float(vals[0]) + float(vals[1]) / n if n else None
        else:
            out[arm] = float(vals[0])
    return out


def score_arms(predictions: Mapping[str, Sequence[Mapping[str, Any]]], costs: Mapping[str, float | None], *,
               metric: str = "f1", n_resamples: int = 10_000, seed: int = 0,
               arms: Sequence[str] | None = None) -> list[ArmScore]:
    """Per arm (``arms`` order, default the predictions' order): the metric's mean over held-out
    questions and its bootstrap CI, computed with the study's own metric functions. Arms listed in
    ``arms`` without predictions, or with fewer than two, are kept with ``excluded`` saying why."""
    from lab.metrics.qa import exact_match, token_f1
    from lab.metrics.stats import bootstrap_ci

    fns = {"f1": token_f1, "exact_match": exact_match}
    if metric not in fns:
        raise ExportError(f"export metric {metric!r} is unknown; choose one of {', '.join(fns)}")
    out = []
    for arm in arms if arms is not None else list(predictions):
        recs = predictions.get(arm, [])
        cost = costs.get(arm)
        cost = None if cost is None or (isinstance(cost, float) and math.isnan(cost)) else float(cost)
        if len(recs) < 2:
            out.append(ArmScore(arm, None, None, None, len(recs), cost,
                                excluded="did not run (no predictions)" if not recs else "fewer than 2 predictions"))
            continue
        vals = [fns[metric](r["prediction"], r["answers"]) for r in recs]
        mean, low, high = bootstrap_ci(vals, n_resamples=n_resamples, seed=seed)
        out.append(ArmScore(arm, mean, low, high, len(vals), cost))
    return out


def choose_arm(scores: Sequence[ArmScore], *, metric: str = "f1", mode: Literal["max", "min"] = "max",
               servable: Sequence[str] | None = None, cost_measure: str = "tokens") -> ArmChoice:
    """The winner by the rule of this module. ``servable`` limits the arms a bundle can carry
    (the others are excluded, with that reason, before the rule runs)."""
    if mode not in ("max", "min"):
        raise ExportError(f"export mode {mode!r}: expected 'max' or 'min'")
    scores = [ArmScore(**asdict(s)) for s in scores]
    for s in scores:
        if s.excluded is None and servable is not None and s.arm not in servable:
            s.excluded = f"not servable (servable arms: {', '.join(servable)})"
    live = [s for s in scores if s.excluded is None and s.mean is not None]
    if not live:
        reasons = "; ".join(f"{s.arm}: {s.excluded}" for s in scores) or "no arms"
        raise ExportError(f"no arm can be exported ({reasons}); rerun the fine-tune comparison")
    sign = 1 if mode == "max" else -1
    best = max(live, key=lambda s: sign * s.mean)

    def overlaps(s: ArmScore) -> bool:
        return s.ci_high >= best.ci_low and s.ci_low <= best.ci_high  # type: ignore[operator]

    candidates = [s for s in live if overlaps(s)]
    order = {s.arm: i for i, s in enumerate(scores)}
    win = min(candidates, key=lambda s: (math.inf if s.cost is None else s.cost, -sign * s.mean, order[s.arm]))
    return ArmChoice(win.arm, metric, mode, best.arm, [s.arm for s in candidates], RULE, scores, cost_measure)
