"""The guardrails study: train the classifier checks, measure every check on labelled data.

For each classifier of ``guardrails_eval`` (prompt injection, toxicity): train on its file minus a
held-out fraction (the threshold chosen on the training part only, :mod:`lab.guardrails.classifier`),
then measure precision, recall, F1, false-positive rate, accuracy, average precision and ROC AUC on
the held-out part, and the same on each extra file named for that check (benign prompts with trigger
words, another domain's comments). PII is measured span by span on Presidio-format sets, per entity
type. The ROC and precision-recall curves of each held-out evaluation are kept for plots, with the
operating point of the stored threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: Binary metrics in the results table, in order.
BINARY = ("n", "positives", "negatives", "precision", "recall", "f1", "fpr", "accuracy", "average_precision",
          "roc_auc", "threshold")


@dataclass
class GuardrailsReport:
    """Everything the stage shows and writes."""

    table: pd.DataFrame                     # one row per (check, set)
    pii_entities: pd.DataFrame              # one row per (set, entity type)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)   # check -> fpr, tpr / precision, recall
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: pd.DataFrame | None = None      # injection: which signals fired on the held-out split

    def metrics(self) -> dict[str, Any]:
        """Nested ``{check: {set: {metric: value}}}`` (null where undefined), plus PII overall."""
        out: dict[str, Any] = {}
        keys = [k for k in (*BINARY, "f2") if k != "threshold"]
        for r in self.table.to_dict("records"):
            vals = {k: r[k] for k in keys if k in r and not pd.isna(r[k])}
            out.setdefault(r["check"], {})[r["set"]] = {k: (int(v) if k in ("n", "positives", "negatives")
                                                           else float(v)) for k, v in vals.items()}
        return out

    def finding(self) -> str:
        rows = self.table.set_index(["check", "set"])
        lines = []
        for (check, set_), r in rows.iterrows():
            if check == "pii":
                lines.append(f"PII on {set_}: span precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
                             f"F2 {r['f2']:.3f} ({int(r['n'])} texts).")
            elif r["positives"] and r["negatives"]:
                lines.append(f"{check} on {set_}: precision {r['precision']:.3f}, recall {r['recall']:.3f}, "
                             f"F1 {r['f1']:.3f}, false-positive rate {r['fpr']:.3f}, average precision "
                             f"{r['average_precision']:.3f} ({int(r['n'])} items, threshold {r['threshold']:.2f} "
                             f"chosen on training data).")
            elif r["negatives"]:
                lines.append(f"{check} on {set_} (benign only): false-positive rate {r['fpr']:.3f} "
                             f"({int(r['n'])} items).")
            else:
                lines.append(f"{check} on {set_} (positives only): recall {r['recall']:.3f} ({int(r['n'])} items).")
        return " ".join(lines)

    def write(self, out_dir: Path) -> list[Path]:
        from lab.io import write_text

        out_dir = Path(out_dir)
        files = {"metrics.json": json.dumps(self.metrics(), indent=2, sort_keys=True, default=float) + "\n",
                 "results.csv": self.table.to_csv(index=False),
                 "pii_entities.csv": self.pii_entities.to_csv(index=False),
                 "training.json": json.dumps(self.training, indent=2, sort_keys=True) + "\n"}
        for check, df in self.curves.items():
            files[f"plots/roc_{check}.csv"] = df[["fpr", "tpr"]].dropna().to_csv(index=False)
            files[f"plots/pr_{check}.csv"] = df[["recall", "precision"]].dropna().to_csv(index=False)
        written = []
        for rel, text in files.items():
            write_text(out_dir / rel, text)
            written.append(out_dir / rel)
        return written


def _curves(labels: list[int], scores: list[float]) -> pd.DataFrame:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    p, r, _ = precision_recall_curve(labels, scores)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": r, "precision": p})
    return pd.concat([roc, pr], axis=1)


def run(cfg: Any, root: Path, *, progress: bool = True) -> GuardrailsReport:
    """Train and measure everything ``cfg`` (a :class:`lab.config.GuardrailsEvalConfig`) names."""
    from lab.guardrails.evaluate import evaluate, read_labelled
    from lab.guardrails.injection import rule_hits
    from lab.guardrails.training import train_check
    from lab.progress import bar

    out = root / cfg.out_dir
    rows, curves, training, signals = [], {}, {}, None
    models = {}
    for spec in bar(cfg.classifiers, desc="guardrail classifiers", enable=progress):
        folder = out / "models" / spec.check
        meta = train_check(spec.check, cfg.resolve(spec.data, root), folder,
                           heldout_fraction=spec.heldout_fraction, seed=cfg.seed,
                           extra=[(cfg.resolve(e.data, root), e.only_label) for e in spec.extra])
        meta["sources"] = [str(Path(spec.data)), *(e.data + (f" (label {e.only_label} only)"
                                                            if e.only_label is not None else "") for e in spec.extra)]
        meta.pop("out_dir", None)
        training[spec.check] = meta
        models[spec.check] = folder
        held = folder / "heldout.jsonl"
        res = evaluate(held, spec.check, options={"model_dir": str(folder)})
        rows.append({"check": spec.check, "set": "heldout", **res})
        from lab.guardrails import make_check

        check = make_check(spec.check, model_dir=str(folder))
        data = read_labelled(held)
        probs = check.scores(data.texts)
        curves[spec.check] = _curves(data.labels, probs)
        if spec.check == "injection":  # which signals fire: the classifier's cut and each rule
            hits = [rule_hits(t) for t in data.texts]
            signals = pd.DataFrame({"label": data.labels, "classifier": [p >= check.threshold for p in probs],
                                    "rules": [", ".join(h) for h in hits]})
            signals["fired"] = signals["classifier"] | signals["rules"].ne("")
    for e in cfg.evals:
        options = {"model_dir": str(models[e.check])} if e.check in models else None
        res = evaluate(cfg.resolve(e.data, root), e.check, options=options)
        rows.append({"check": e.check, "set": e.name, **res})
    ent_rows = []
    for path in bar(cfg.pii_sets, desc="PII sets", enable=progress):
        res = evaluate(cfg.resolve(path, root), "pii")
        name = Path(path).stem
        rows.append({"check": "pii", "set": name, "n": res["n"], "precision": res["precision"],
                     "recall": res["recall"], "f2": res["f2"], "threshold": res["threshold"]})
        for ent, m in res["per_entity"].items():
            ent_rows.append({"set": name, "entity": ent, **m})
    table = pd.DataFrame(rows)
    keep = ["check", "set", *BINARY, "f2", "skipped", "seconds"]
    table = table.reindex(columns=[c for c in keep if c in table.columns])
    for c in ("n", "positives", "negatives", "skipped"):  # counts stay integers beside the PII rows' gaps
        if c in table:
            table[c] = table[c].astype("Int64")
    return GuardrailsReport(table, pd.DataFrame(ent_rows), curves, training, signals)
