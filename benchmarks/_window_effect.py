"""What the default windows change on the guardrails stage's own labelled sets (issue 32):
``guardrails_latency.py --window-effect``.

    python benchmarks/guardrails_latency.py --window-effect [--models results/guardrails_eval/models] \\
        --out benchmarks/results/guardrails_window_effect.json

Windows leave a text of at most one window as it was (scored whole, the same call), so a set of
short prompts keeps its figures; a set with longer texts is now scored in windows, as the check is
served. This scores every set the ``guardrails_eval`` stage measures a classifier on (each
classifier's held-out split ``<models>/<check>/heldout.jsonl`` and the ``evals`` of
``params.yaml``) with the same trained model: with the check's defaults (``windowed``: a text
longer than one window scored by the window model at its length-aware cut, where the classifier's
folder holds one), with the windows scored by the classifier (``classifier``, ``window_model:
false``: the behaviour before window models; only for a check with a window model) and whole
(``whole``, ``window_words: None``: how the stage scored them before windows were the default),
rules off, at the classifier's stored best-F1 threshold and at its stored 1%-FPR operating point
(``max_fpr: 0.01``; a text the window model scores is held to its length-aware cut, at the 1%
point one whose target is 1% too; ``roc_auc`` then ranks each text's margin over its own cut).

JSON keys: ``rows`` (one per check, set and mode: ``check``, ``set``, ``mode``, ``n``,
``positives``, ``split_texts`` (texts longer than one window), ``words_p50``, ``recall``, ``fpr``
(None where the set has no positive or no negative), ``recall_at_max_fpr_0.01``,
``fpr_at_max_fpr_0.01``, ``roc_auc``, ``threshold``, ``window_words``, ``window_model``); ``models``; ``params``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The stored operating point reported beside the best-F1 threshold.
POINT = 0.01


def stage_sets(params: Path, models: Path) -> list[tuple[str, str, Path]]:
    """``(check, set name, file)`` of every set the guardrails stage measures a classifier on: each
    trained classifier's held-out split, then ``guardrails_eval.evals`` of ``params``."""
    from lab.config import read_params
    from lab.paths import resolve_path

    section = read_params(params).get("guardrails_eval") or {}
    out = [(c["check"], "heldout", models / c["check"] / "heldout.jsonl") for c in section.get("classifiers") or []]
    out += [(e["check"], e["name"], resolve_path(e["data"], params.parent)) for e in section.get("evals") or []]
    return [(c, name, f) for c, name, f in out if (models / c / "model.joblib").is_file()]


def _share(hits: Sequence[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def rates(scores: Sequence[tuple[float, float | None]], labels: Sequence[int],
          cut: float) -> tuple[float | None, float | None]:
    """Recall and false-positive rate of each ``(score, own cut)`` at its own cut (a text the window
    model scored), else at ``cut``; None where a class is absent."""
    fired = [s >= (own if own is not None else cut) for s, own in scores]
    pos = [f for f, y in zip(fired, labels, strict=True) if y == 1]
    neg = [f for f, y in zip(fired, labels, strict=True) if y == 0]
    return _share(pos), _share(neg)


def score_set(check: Any, texts: Sequence[str], labels: Sequence[int], point: float | None,
              at_point: Any = None) -> dict[str, Any]:
    """One check on one labelled set: the figures of the module's JSON keys. ``at_point``: the same
    check built with ``max_fpr`` at the point (its window model's cut then targets that rate too)."""
    from sklearn.metrics import roc_auc_score

    scores = [(w.score, w.threshold) for w in check.window_scores(list(texts))]
    recall, fpr = rates(scores, labels, check.threshold)
    row: dict[str, Any] = {"n": len(texts), "positives": sum(labels),
                           "split_texts": sum(len(check.windows(t)) > 1 for t in texts),
                           "words_p50": statistics.median(len(t.split()) for t in texts) if texts else None,
                           "recall": recall, "fpr": fpr, "threshold": round(check.threshold, 4),
                           "window_words": check.window_words}
    if point is not None:
        pts = scores if at_point is None else [(w.score, w.threshold) for w in at_point.window_scores(list(texts))]
        row[f"recall_at_max_fpr_{POINT:g}"], row[f"fpr_at_max_fpr_{POINT:g}"] = rates(pts, labels, point)
    ranked = check.margins(list(texts)) if check.window_model is not None else [s for s, _ in scores]
    row["roc_auc"] = float(roc_auc_score(labels, ranked)) if 0 < sum(labels) < len(labels) else None
    return row


def run(*, params: Path, models: Path) -> dict[str, Any]:
    """Every stage set, windowed and whole (see the module docstring); returns the report."""
    from lab.errors import DataError
    from lab.guardrails import make_check
    from lab.guardrails.evaluate import read_labelled

    sets = stage_sets(params, models)
    if not sets:
        raise DataError(f"{models}: no trained classifier of the guardrails stage (dvc repro guardrails_eval, "
                        "or --models DIR)")
    rows = []
    for name, set_name, path in sets:
        data = read_labelled(path)
        opts: dict[str, Any] = {"model_dir": str(models / name), **({"rules": False} if name != "toxicity" else {})}
        for mode, extra in (("windowed", {}), ("classifier", {"window_model": False}), ("whole", {"window_words": None})):
            check = make_check(name, **opts, **extra)
            if mode == "classifier" and rows and rows[-1]["mode"] == "windowed" and rows[-1]["window_model"] is False:
                continue   # no window model: the classifier's windows are the windowed mode
            point = next((float(p["threshold"]) for p in check.model.meta.get("operating_points") or []
                          if abs(float(p["max_fpr"]) - POINT) < 1e-12), None)
            at_point = make_check(name, **opts, **extra, max_fpr=POINT) if point is not None else None
            rows.append({"check": name, "set": set_name, "mode": mode, "window_model": check.window_model is not None,
                         **score_set(check, data.texts, data.labels, point, at_point)})
    return {"rows": rows, "models": str(models), "params": str(params)}
