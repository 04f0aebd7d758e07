"""The judge study: calibrate every judge against human labels, choose the default, score the arms.

Per task (``grounded``: faithfulness of an answer to its context, on HaluEval QA pairs; ``general``:
hallucination in a response with no context, on HaluEval general's human labels), with the sets of
:func:`lab.judge.catalog.task_sets`:

1. the baselines: the training majority class and (grounded) the lexical-support rule, its
   threshold fitted on the training items;
2. the trained local judge: a cross-encoder fine-tuned on the training items, its threshold chosen
   on the validation items (kept, a ``persist`` output, and reused while its training data, settings
   and code are unchanged);
3. every prompted judge of ``judges`` (a rubric through a :mod:`lab.generate` backend): its
   threshold on P(positive) chosen on the validation items where the backend gives scores;
4. each judge's agreement on the validation items (for choosing) and on the evaluation items (only
   reported): accuracy, F1, kappa with bootstrap CIs, confusion matrix, parse failures, cache hits;
   a judge whose evaluation kappa is below ``agreement_bar`` is flagged;
5. grounded: every judge also on the length-balanced diagnostic sets (:mod:`lab.judge.counterfactual`:
   the validation and evaluation items plus their counterfactual answers, labels by construction),
   beside the ``length`` baseline: HaluEval's right answers are short and its hallucinated ones long,
   so agreement on the plain items alone cannot tell faithfulness from answer length;
6. the default judge of the task: the best validation kappa among the judges that are not baselines
   of nothing (majority, length); for grounded, only among those whose kappa on the length-balanced
   validation set is not significantly below the lexical baseline's (:func:`diagnostic_guard`):
   agreement on the plain items decides, the diagnostic set vetoes a length shortcut. With
   ``shortcuts`` set (a file of ``lab judge make-data``), a grounded judge is also vetoed when its
   verdict tracks answer length, flags faithful paraphrases, or does not tell a planted error from
   its faithful twin of the same length (:mod:`lab.judge.shortcuts`, :func:`shortcut_veto`).

With ``claims`` set, the claim-support model (:mod:`lab.judge.claim_training`: a cross-encoder trained
on (evidence window, claim) pairs of ``lab judge make-data`` answers, kept while its data, settings
and code are unchanged) is a grounded candidate as ``claims:claim-support-cross-encoder``: each claim
of an answer checked against windows of the context (:mod:`lab.judge.claim_judge`). With
``realistic`` set (labelled long-form answers over documents no judge trained on), every grounded
judge is also measured there (split ``realistic``, metrics ``grounded_realistic``) and the grounded
default is chosen on THAT kappa, under the same guards; HaluEval's items are then only reported.

With ``reviewed`` set, every grounded judge is also measured on the human labels of a reviewed test
set (:func:`lab.handoff.reviewed_set.review_labels`: accepted and edited items supported, items rejected
as unsupported not; split ``reviewed``, metrics ``grounded_reviewed``): how far the judges agree with
a person on your own documents.

Then the fine-tune comparison's answers are judged by the default grounded judge against the SQuAD
paragraph each question was written from, or, for a test set task, against its question's reference
excerpts (:func:`answer_sources`), and, for RAG arms, against the retrieved passages: the
hallucination (unsupported-answer) rate per arm with a bootstrap CI, parse failures counted.

(Over 500 lines on purpose: one study is one module, and no study imports another; its report
figures, the choice rule and the arms' scoring read the same calibration tables.)
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lab.handoff.predictions import read_predictions
from lab.io import read_jsonl
from lab.stage import StagePaths, stage

#: Columns of the calibration table, in order.
COLUMNS = ("task", "judge", "kind", "rubric", "split", "n", "n_scored", "accuracy", "accuracy_ci", "f1", "f1_ci",
           "kappa", "kappa_ci", "parse_failures", "generation_failures", "cache_hits", "threshold", "below_bar",
           "sampled")


@dataclass
class JudgeReport:
    """Everything the stage shows and writes."""

    table: pd.DataFrame                                   # one row per (task, judge, split)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)   # "task/judge" -> evaluation report
    choices: dict[str, Any] = field(default_factory=dict)              # judges.json
    arms: pd.DataFrame | None = None                      # hallucination rate per arm
    judgments: list[dict[str, Any]] = field(default_factory=list)      # every evaluation judgment (raw kept)
    training: dict[str, Any] = field(default_factory=dict)
    side_by_side: pd.DataFrame | None = None              # lab, ragas and MLflow on one sample
    reviewed: dict[str, Any] | None = None                # the reviewed test set's label counts (when configured)
    reviewed_note: str | None = None                      # why agreement with the review is not measured (yet)

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        suffix = {"evaluation": "", "diagnostic": "_length_balanced", "reviewed": "_reviewed", "realistic": "_realistic"}
        for r in self.table.to_dict("records"):
            if r["split"] not in suffix:
                continue
            # cache hits depend on this machine's judgment cache, not on the judges: run_stats.json
            vals = {k: r[k] for k in ("n", "n_scored", "accuracy", "f1", "kappa", "parse_failures")}
            key = r["task"] + suffix[r["split"]]
            out.setdefault(key, {})[r["judge"]] = {k: v for k, v in vals.items() if v is not None and not pd.isna(v)}
        if self.reviewed is not None:
            out.setdefault("grounded_reviewed", {})["labels"] = {
                "supported": self.reviewed["supported"], "unsupported": self.reviewed["unsupported"],
                "excluded": sum(self.reviewed["excluded"].values())}
        for task, name in self.choices.get("default", {}).items():
            out.setdefault(task, {})["default"] = name
            for key, report in ((task, f"{task}/{name}"), (f"{task}_length_balanced", f"{task}/{name}/diagnostic")):
                vs = self.reports.get(report, {}).get("vs_lexical")
                if vs:
                    out.setdefault(key, {})["default_minus_lexical"] = {k: v["diff"] for k, v in vs.items()}
        if self.arms is not None:
            out["arms"] = {r["arm"]: {k: r[k] for k in ("n", "hallucination_rate", "parse_failures", "ragas_exact_match",
                                                         "ragas_string_present", "ragas_non_llm_string_similarity")}
                           for r in self.arms.to_dict("records") if r["against"] == "source paragraph"}
        if self.side_by_side is not None:
            out["side_by_side"] = {f"{r['via']}/{r['judge']}": {k: r[k] for k in ("n", "n_scored", "parse_failures",
                                                                                  "unfaithful_rate", "accuracy", "kappa")
                                                               if r[k] is not None and not pd.isna(r[k])}
                                   for r in self.side_by_side.to_dict("records")}
        return out

    def finding(self) -> str:
        lines = []
        ev = self.table[self.table["split"] == "evaluation"]
        for task, name in self.choices.get("default", {}).items():
            rows = ev[ev["task"] == task].set_index("judge")
            r = rows.loc[name]
            on = "realistic-set kappa" if task in self.choices.get("realistic_kappa", {}) else "validation kappa"
            if task in self.choices.get("diagnostic_guard", {}):
                on += ", among the judges not significantly below the lexical baseline on the length-balanced validation set"
            line = (f"{task}: default judge {name} (chosen on {on}) agrees with the labels at accuracy "
                    f"{r['accuracy']:.3f} {_ci(r['accuracy_ci'])}, kappa {r['kappa']:.3f} {_ci(r['kappa_ci'])} "
                    f"on {int(r['n'])} evaluation items")
            if "lexical" in rows.index:
                lx = rows.loc["lexical"]
                line += f"; the lexical baseline {lx['accuracy']:.3f} {_ci(lx['accuracy_ci'])}, kappa {lx['kappa']:.3f}"
                line += _vs_lexical(self.reports.get(f"{task}/{name}", {}), ("accuracy", "kappa"))
            line += f"; majority accuracy {rows.loc['majority', 'accuracy']:.3f}."
            lines.append(line)
            diag = self.table[(self.table["split"] == "diagnostic") & (self.table["task"] == task)].set_index("judge")
            if name in diag.index:
                d = diag.loc[name]
                line = (f"On the length-balanced {task} set ({int(d['n'])} items: the evaluation items and their "
                        f"counterfactual answers) {name} reaches accuracy {d['accuracy']:.3f} {_ci(d['accuracy_ci'])}, "
                        f"kappa {d['kappa']:.3f} {_ci(d['kappa_ci'])}")
                for base in ("lexical", "length"):
                    if base in diag.index:
                        line += f"; {base} {diag.loc[base, 'accuracy']:.3f} (kappa {diag.loc[base, 'kappa']:.3f})"
                line += _vs_lexical(self.reports.get(f"{task}/{name}/diagnostic", {}), ("accuracy",))
                lines.append(line + ".")
            vetoed = {j: g["shortcuts"]["why"] for j, g in self.choices.get("diagnostic_guard", {}).get(task, {}).items()
                      if "shortcuts" in g and not g["shortcuts"]["admissible"]}
            if vetoed:
                lines.append("Vetoed by the length and paraphrase diagnostic (lab.judge.shortcuts): " + "; ".join(
                    f"{j} ({', '.join(w.split(':')[0] for w in why)})" for j, why in vetoed.items()) + ".")
        real = self.table[self.table["split"] == "realistic"].set_index("judge")
        name = self.choices.get("default", {}).get("grounded")
        if name in real.index:
            r = real.loc[name]
            line = (f"On the realistic set ({int(r['n'])} long-form answers over documents no judge trained on) "
                    f"{name} reaches accuracy {_num(r['accuracy'])} {_ci(r['accuracy_ci'])}, kappa {_num(r['kappa'])} "
                    f"{_ci(r['kappa_ci'])}")
            others = [f"{j} {_num(real.loc[j, 'kappa'])}" for j in real.index if j != name]
            lines.append(line + (f"; kappa of the others there: {', '.join(others)}." if others else "."))
        rev = self.table[self.table["split"] == "reviewed"].set_index("judge")
        if self.reviewed is not None and name in rev.index:
            r, c = rev.loc[name], self.reviewed
            lines.append(f"On {int(r['n'])} reviewed test set items ({c['supported']} supported, {c['unsupported']} "
                         f"rejected as unsupported; {sum(c['excluded'].values())} without a grounding label left out) "
                         f"the default grounded judge {name} agrees with the reviewer at accuracy "
                         f"{_num(r['accuracy'])} {_ci(r['accuracy_ci'])}, kappa {_num(r['kappa'])} {_ci(r['kappa_ci'])}.")
        if self.reviewed_note is not None:
            lines.append(f"Agreement with your review: {self.reviewed_note}.")
        flagged = ev[ev["below_bar"] == True]
        if len(flagged):
            lines.append("Below the agreement bar (kappa "
                         f"{self.choices.get('agreement_bar')}): " + ", ".join(
                             f"{t}/{j}" for t, j in zip(flagged["task"], flagged["judge"], strict=True)) + ".")
        return " ".join(lines)

    def run_stats(self) -> dict[str, float]:
        """Figures of this run that depend on machine state (judgment-cache hits per task, judge and
        split), for MLflow only: ``run_stats.json``, never ``metrics.json``."""
        return {f"cache_hits.{r['task']}.{r['split']}.{r['judge']}": float(r["cache_hits"])
                for r in self.table.to_dict("records") if r.get("cache_hits") is not None and not pd.isna(r["cache_hits"])}

    def plot_agreement(self) -> Any:
        """Accuracy and kappa with their CIs per judge: grounded (evaluation and length-balanced items)
        and general, with the agreement bar."""
        import matplotlib.pyplot as plt

        ev = self.table[self.table["split"] == "evaluation"]
        diag = self.table[self.table["split"] == "diagnostic"]
        panels = [("grounded", ev, "evaluation items"), ("grounded", diag, "length-balanced"),
                  ("general", ev, "evaluation items")]
        for split, what in (("realistic", "realistic set"), ("reviewed", "reviewed test set")):
            if len(self.table[self.table["split"] == split]):
                panels.append(("grounded", self.table[self.table["split"] == split], what))
        fig, axes = plt.subplots(1, len(panels), figsize=(17 * len(panels) / 3, 4.5), sharex=True)
        for ax, (task, table, what) in zip(axes, panels, strict=True):
            d = table[table["task"] == task].reset_index(drop=True)
            for metric, off, colour in (("accuracy", -0.15, "C0"), ("kappa", 0.15, "C1")):
                vals = d[metric].astype(float)
                lo = [v - c[0] if isinstance(c, list) else 0 for v, c in zip(vals, d[metric + "_ci"], strict=True)]
                hi = [c[1] - v if isinstance(c, list) else 0 for v, c in zip(vals, d[metric + "_ci"], strict=True)]
                ax.errorbar(vals, [i + off for i in range(len(d))], xerr=[lo, hi], fmt="o", color=colour,
                            label=metric, capsize=3)
            ax.set_yticks(range(len(d)), d["judge"])
            ax.axvline(self.choices.get("agreement_bar", 0.4), ls=":", color="grey")
            ax.set(title=f"{task} ({what})", xlabel="agreement with labels")
            ax.legend(loc="lower right")
        fig.tight_layout()
        return fig

    def plot_confusion(self) -> Any:
        """The confusion matrix of every (task, judge) on the evaluation items."""
        import matplotlib.pyplot as plt

        reports = {k: r for k, r in self.reports.items()
                   if not k.endswith(("/diagnostic", "/reviewed", "/shortcuts", "/realistic"))}
        fig, axes = plt.subplots(1, len(reports), figsize=(2.6 * len(reports), 2.8), squeeze=False)
        for ax, (key, rep) in zip(axes[0], reports.items(), strict=True):
            cm = rep.get("confusion") or [[0, 0], [0, 0]]
            ax.imshow(cm, cmap="Blues")
            for i in range(2):
                for j in range(2):
                    ax.text(j, i, cm[i][j], ha="center", va="center")
            ax.set(title=key.replace("/", "\n"), xticks=[0, 1], yticks=[0, 1])
        fig.tight_layout()
        return fig

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        t = self.table
        reviewed = [("Reviewed test set items (the reviewer's decisions as labels)",
                     t[t["split"] == "reviewed"].drop(columns=["split"])),
                    ("Reviewed items: labels and what was left out", self.reviewed)] if self.reviewed is not None else \
            [("Agreement with your review", self.reviewed_note)] if self.reviewed_note is not None else []
        return [
            ("Evaluation items", t[t["split"] == "evaluation"].drop(columns=["split"])),
            ("Length-balanced diagnostic items", t[t["split"] == "diagnostic"].drop(columns=["split"])),
            *([("Realistic set (long-form answers over unseen documents; the grounded default is chosen here)",
                t[t["split"] == "realistic"].drop(columns=["split"]))] if (t["split"] == "realistic").any() else []),
            *reviewed,
            ("Agreement with human labels (95% CIs)", out_dir / "plots" / "agreement.png"),
            ("Confusion matrices", out_dir / "plots" / "confusion.png"),
            ("Validation (thresholds and the default's choice)",
             t[t["split"].isin(["validation", "diagnostic_validation"])]),
            ("lab, ragas and MLflow side by side", self.side_by_side if self.side_by_side is not None else "not run"),
            ("The fine-tune arms judged", self.arms if self.arms is not None else "no answers judged"),
            ("Training", self.training),
        ]

    def write(self, out_dir: Path) -> list[Path]:
        from lab import viz
        from lab.handoff import judges
        from lab.io import write_text

        out_dir = Path(out_dir)
        files = {"metrics.json": json.dumps(self.metrics(), indent=2, sort_keys=True, default=float) + "\n",
                 "run_stats.json": json.dumps(self.run_stats(), indent=2, sort_keys=True) + "\n",
                 "calibration.csv": self.table.drop(columns=["cache_hits"], errors="ignore").to_csv(index=False),
                 judges.CALIBRATION: json.dumps(self.reports, indent=2, sort_keys=True, default=float) + "\n",
                 judges.FILE: judges.dumps(self.choices),
                 "training.json": json.dumps(self.training, indent=2, sort_keys=True) + "\n",
                 "judgments.jsonl": "".join(json.dumps(j, sort_keys=True) + "\n" for j in self.judgments)}
        if self.arms is not None:
            files["arms.csv"] = self.arms.to_csv(index=False)
        if self.side_by_side is not None:
            files["side_by_side.csv"] = self.side_by_side.to_csv(index=False)
        written = []
        for rel, text in files.items():
            write_text(out_dir / rel, text)
            written.append(out_dir / rel)
        written.append(viz.save(self.plot_agreement(), out_dir / "plots" / "agreement.png"))
        written.append(viz.save(self.plot_confusion(), out_dir / "plots" / "confusion.png"))
        return written


def _vs_lexical(report: dict[str, Any], stats: tuple[str, ...]) -> str:
    """``; paired difference default - lexical: ...`` for ``stats``, or "" without a comparison."""
    vs = report.get("vs_lexical")
    if not vs:
        return ""
    return "; paired difference default - lexical: " + ", ".join(
        f"{k} {vs[k]['diff']:+.3f} {_ci(vs[k]['diff_ci'])}" for k in stats)


def _num(value: Any) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def _ci(ci: Any) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, list | tuple) and len(ci) == 2 else ""


def _sample(items: list[Any], n: int | None, seed: int) -> list[Any]:
    return items if n is None or n >= len(items) else random.Random(seed).sample(items, n)


def _trained(cfg: Any, root: Path, task: str, sets: Any, progress: bool) -> Any:
    from lab.judge.calibrate import as_input
    from lab.judge.catalog import TRAINED_NAME
    from lab.judge.counterfactual import augment
    from lab.judge.trained import (
        CrossEncoderJudge,
        _digest,
        pair_text,
        settings_record,
        train_cross_encoder,
        training_code_id,
    )

    from lab.handoff.judges import models_dir

    name = TRAINED_NAME[task]
    folder = models_dir(cfg.resolve(cfg.out_dir, root)) / name
    settings = cfg.trained
    train_in = [as_input(i) for i in sets.train]
    labels = [i.label for i in sets.train]
    want = _digest([pair_text(i, task) for i in train_in], labels)
    meta = folder / "meta.json"
    if meta.is_file():
        old = json.loads(meta.read_text(encoding="utf-8"))
        if old.get("train_data_sha256") == want and old.get("settings") == settings_record(settings, cfg.seed) \
                and old.get("code") == training_code_id():
            return CrossEncoderJudge(folder)   # unchanged data and settings: the kept model
    extra = augment(sets.train, settings.augment, seed=cfg.seed) if task == "grounded" and settings.augment else []
    return train_cross_encoder(train_in, labels, [as_input(i) for i in sets.validation],
                               [i.label for i in sets.validation], task=task, out_dir=folder, name=name,
                               settings=settings, seed=cfg.seed, sources=[sets.sources["train"]],
                               augmented=[as_input(i) for i in extra], augmented_labels=[i.label for i in extra])


def _claims(cfg: Any, root: Path) -> Any:
    """The claim-level judge over the claim-support model (trained, or kept: :func:`lab.judge.claim_training.train_or_keep`)."""
    from lab.handoff.judges import models_dir
    from lab.judge.catalog import make_judge
    from lab.judge.claim_training import NAME, train_or_keep

    folder = models_dir(cfg.resolve(cfg.out_dir, root))
    train_or_keep(cfg.claims, root, folder / NAME, seed=cfg.seed)
    return make_judge(f"claims:{NAME}", "grounded", cfg, root, models_dir=folder)


@stage("judge_eval")
def run(cfg: Any, paths: StagePaths, *, progress: bool = True) -> JudgeReport:
    """Calibrate, choose and score as the module docstring says (``cfg``: :class:`lab.config.JudgeEvalConfig`)."""
    root = paths.root
    from lab.judge.baselines import LengthJudge, LexicalJudge, MajorityJudge
    from lab.judge.calibrate import as_input
    from lab.judge.catalog import RUBRIC_OF_TASK, TASKS, task_sets
    from lab.judge.prompted import PromptedJudge
    from lab.progress import bar

    rows: list[dict[str, Any]] = []
    reports: dict[str, dict[str, Any]] = {}
    choices: dict[str, Any] = {"default": {}, "thresholds": {}, "agreement_bar": cfg.agreement_bar,
                               "validation_kappa": {}}
    training: dict[str, Any] = {}
    judgments: list[dict[str, Any]] = []
    grounded = task_sets(cfg, root, "grounded")
    lexical = LexicalJudge().fit([as_input(i) for i in grounded.train], [i.label for i in grounded.train])
    reviewed, reviewed_note = reviewed_labels(cfg, root) if cfg.reviewed is not None else (None, None)
    realistic = None
    if cfg.realistic:
        from lab.data.halueval import read_judged

        realistic = read_judged(cfg.resolve(cfg.realistic, root), fmt="answers")
    shortcuts = None
    if cfg.shortcuts:
        from lab.judge.shortcuts import read_shortcut_set

        shortcuts = read_shortcut_set(cfg.resolve(cfg.shortcuts, root))
    for task in bar(TASKS, desc="judge tasks", enable=progress):
        sets = grounded if task == "grounded" else task_sets(cfg, root, task)
        train_in, train_labels = [as_input(i) for i in sets.train], [i.label for i in sets.train]
        judges: list[tuple[Any, int | None]] = [(MajorityJudge().fit(train_in, train_labels), None),
                                                (LengthJudge().fit(train_in, train_labels), None)]
        if task == "grounded":
            judges.append((lexical, None))
        trained = _trained(cfg, root, task, sets, progress)
        training[task] = trained.meta
        judges.append((trained, None))
        if task == "grounded" and cfg.claims is not None:
            claims = _claims(cfg, root)
            training["claims"] = claims.scorer.judge.meta
            judges.append((claims, None))
        for spec in cfg.judges:
            if task in spec.tasks:
                judges.append((PromptedJudge(spec.name, RUBRIC_OF_TASK[task], spec.backend), spec.sample))
        val_kappa: dict[str, float] = {}
        real_kappa: dict[str, float] = {}
        guard: dict[str, dict[str, Any]] = {}
        for judge, sample in bar(judges, desc=f"{task} judges", enable=progress):
            res = calibrate_judge(judge, sets, cfg, sample=sample, lexical=lexical if task == "grounded" else None)
            if res.threshold is not None:
                choices["thresholds"].setdefault(judge.name, {})[task] = res.threshold
            rows.append(_row(task, judge, "validation", res.validation, res.sampled_validation))
            reports[f"{task}/{judge.name}"] = res.evaluation
            rows.append(_row(task, judge, "evaluation", res.evaluation, res.sampled_evaluation))
            if sets.diagnostic_validation:
                dval, diag = diagnose_judge(judge, sets, cfg, sample=sample, lexical=lexical)
                rows.append(_row(task, judge, "diagnostic_validation", dval, sample is not None))
                rows.append(_row(task, judge, "diagnostic", diag, sample is not None))
                reports[f"{task}/{judge.name}/diagnostic"] = diag
                if judge.kind not in ("majority", "length", "lexical"):
                    guard[judge.name] = diagnostic_guard(dval, lexical_dval(lexical, sets, cfg, sample), cfg)
            if task == "grounded" and shortcuts is not None and judge.kind not in ("majority", "length"):
                veto = shortcut_veto(judge, shortcuts, cfg, sample=sample)
                reports[f"{task}/{judge.name}/shortcuts"] = veto
                if judge.kind != "lexical":   # the baseline is admitted, as by the length-balanced guard
                    guard[judge.name] = with_shortcuts(guard.get(judge.name), veto)
            if task == "grounded" and realistic is not None:
                rep, got = on_reviewed(judge, realistic, cfg, sample=sample, lexical=lexical,
                                       source=f"{cfg.realistic} (realistic: long-form answers over unseen documents)")
                rows.append(_row(task, judge, "realistic", rep, sample is not None and sample < len(realistic.items)))
                reports[f"{task}/{judge.name}/realistic"] = rep
                if judge.kind not in ("majority", "length") and rep.get("kappa") is not None:
                    real_kappa[judge.name] = rep["kappa"]
            if task == "grounded" and reviewed is not None:
                rep, got = on_reviewed(judge, reviewed, cfg, sample=sample, lexical=lexical)
                rows.append(_row(task, judge, "reviewed", rep, sample is not None and sample < len(reviewed.items)))
                reports[f"{task}/{judge.name}/reviewed"] = rep
                judgments.extend({"task": "grounded_reviewed", "item": i.id, **j.to_dict(), "human_label": i.label}
                                 for i, j in zip(_sample(reviewed.items, sample, cfg.seed), got, strict=True))
            if judge.kind not in ("majority", "length") and res.validation.get("kappa") is not None:
                val_kappa[judge.name] = res.validation["kappa"]
            # the item's human label as its own key: a judgment's ``label`` is the judge's verdict text
            judgments.extend({"task": task, "item": i.id, **j.to_dict(), "human_label": i.label}
                             for i, j in zip(res.items, res.judgments, strict=True))
        choices["validation_kappa"][task] = val_kappa
        choices.setdefault("chosen_on", {})[task] = "validation, guarded by diagnostic_validation" \
            if sets.diagnostic_validation else "validation"
        if task == "grounded" and shortcuts is not None:
            choices["chosen_on"][task] += " and the length/paraphrase veto (shortcuts)"
        if guard:
            choices.setdefault("diagnostic_guard", {})[task] = guard
        if real_kappa:
            choices.setdefault("realistic_kappa", {})[task] = real_kappa
            choices["chosen_on"][task] = choices["chosen_on"][task].replace("validation", "the realistic set", 1)
        choices["default"][task] = choose_default(real_kappa or val_kappa, guard)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    report = JudgeReport(table, reports, choices, judgments=judgments, training=training,
                         reviewed=reviewed.counts if reviewed is not None else None, reviewed_note=reviewed_note)
    if cfg.ragas is not None or cfg.mlflow_evaluate:
        report.side_by_side = side_by_side(cfg, root, grounded, choices["default"]["grounded"], lexical,
                                           thresholds=choices["thresholds"])
    if cfg.answers:
        report.arms = score_arms(cfg, root, choices["default"]["grounded"], progress=progress,
                                 thresholds=choices["thresholds"])
    return report


def reviewed_labels(cfg: Any, root: Path) -> tuple[Any, str | None]:
    """The human labels of ``cfg.reviewed`` (:func:`lab.handoff.reviewed_set.review_labels`), the
    references checked against its corpus folder, and None; or None and why agreement with the
    review is not measured yet: no decisions file beside the test set, or no decided item that carries
    a grounding label (the counts of what was left out). A new project's first ``dvc repro`` runs
    before anyone reviewed; the stage goes on and says how to review.

    Raises
    ------
    DataError
        Missing files (named, with the stage that writes them), or a malformed review.
    """
    from lab.data.benchmarks import corpus_documents
    from lab.errors import DataError
    from lab.data.review_file import review_path
    from lab.handoff.reviewed_set import review_labels

    spec = cfg.reviewed
    corpus = cfg.resolve(spec.corpus_dir, root)
    if not corpus.is_dir():
        raise DataError(f"{corpus}: corpus folder not found (judge_eval.reviewed.corpus_dir); the ingest stage "
                        f"writes it (`dvc repro ingest`)")
    questions = cfg.resolve(spec.questions, root)
    how = f"review the test set (`lab review --testset {spec.questions}`), then `dvc repro`"
    if questions.is_file() and not review_path(questions).is_file():
        return None, f"not measured yet: {spec.questions} has no review ({review_path(spec.questions).name}); {how}"
    labels = review_labels(questions, corpus_documents(corpus), spec.unsupported_reasons)
    if not labels.items:
        c = labels.counts
        return None, (f"not measured yet: no reviewed item of {spec.questions} carries a grounding label "
                      f"({c['decisions']} decision(s) on {c['items']} items; left out: {c['excluded'] or 'none'}); "
                      f"{how} (accept, edit, or reject with one of judge_eval.reviewed.unsupported_reasons)")
    return labels, None


def on_reviewed(judge: Any, reviewed: Any, cfg: Any, *, sample: int | None = None, lexical: Any = None,
                source: str | None = None) -> tuple[dict[str, Any], list[Any]]:
    """``judge`` (its threshold chosen) on the reviewed items (or another labelled set, ``source``
    naming it): the calibration report (agreement with CIs, failures, the majority and lexical
    baselines) and the judgments, in item order."""
    from lab.judge.base import tally
    from lab.judge.calibrate import as_input, calibrate

    items = _sample(reviewed.items, sample, cfg.seed)
    got = judge.judge([as_input(i) for i in items])
    rep = calibrate(judge, items, lexical=lexical, bar=cfg.agreement_bar, n_resamples=cfg.n_resamples, seed=cfg.seed,
                    judgments=got)
    rep["counts"] = tally(got)
    if source is not None:
        rep["sources"] = {"evaluation": source}
        return rep, got
    rep["sources"] = {"evaluation": f"{cfg.reviewed.questions} (reviewed: the reviewer's decisions as labels)"}
    rep["labels"] = reviewed.counts
    return rep, got


@dataclass
class Calibrated:
    """One judge on one task: validation agreement (threshold chosen there), evaluation report."""

    validation: dict[str, Any]
    evaluation: dict[str, Any]
    threshold: float | None
    items: list[Any]
    judgments: list[Any]
    sampled_validation: bool
    sampled_evaluation: bool


def calibrate_judge(judge: Any, sets: Any, cfg: Any, *, sample: int | None = None, lexical: Any = None) -> Calibrated:
    """Judge the validation items (a prompted judge with scores gets its kappa-optimal threshold
    there), then the evaluation items (reported with CIs, failures and the baselines)."""
    from lab.judge.base import tally
    from lab.judge.calibrate import agreement_of, as_input, calibrate
    from lab.judge.prompted import PromptedJudge
    from lab.metrics.agreement import best_threshold

    val = _sample(sets.validation, sample, cfg.seed)
    got = judge.judge([as_input(i) for i in val])
    threshold = None
    scored = [j for j in got if j.score is not None]
    if isinstance(judge, PromptedJudge) and scored and len(scored) == len(got):
        judge.threshold = threshold = best_threshold([i.label for i in val], [j.score for j in got])
        got = [judge._decide(j) for j in got]
    vrep = agreement_of(got, [i.label for i in val], n_resamples=cfg.n_resamples, seed=cfg.seed)
    ev = _sample(sets.evaluation, sample, cfg.seed)
    ev_got = judge.judge([as_input(i) for i in ev])
    rep = calibrate(judge, ev, lexical=lexical, bar=cfg.agreement_bar, n_resamples=cfg.n_resamples, seed=cfg.seed,
                    judgments=ev_got)
    rep["counts"] = tally(ev_got)
    rep["sources"] = sets.sources
    rep["validation"] = {k: vrep.get(k) for k in ("n", "n_scored", "accuracy", "kappa", "parse_failures")}
    return Calibrated(vrep, rep, threshold, ev, ev_got, sample is not None and sample < len(sets.validation),
                      sample is not None and sample < len(sets.evaluation))


def diagnose_judge(judge: Any, sets: Any, cfg: Any, *, sample: int | None = None, lexical: Any = None,
                   validation: bool = True) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A judge (its threshold already chosen) on the length-balanced diagnostic sets of a grounded
    task: agreement on the validation one (for choosing; None with ``validation=False``) and the
    report on the evaluation one."""
    from lab.judge.calibrate import agreement_of, as_input, calibrate

    vrep = None
    if validation:
        dval = _sample(sets.diagnostic_validation, sample, cfg.seed)
        got = judge.judge([as_input(i) for i in dval])
        vrep = _with_verdicts(agreement_of(got, [i.label for i in dval], n_resamples=cfg.n_resamples, seed=cfg.seed),
                              got, [i.label for i in dval])
    diag = calibrate(judge, _sample(sets.diagnostic, sample, cfg.seed), lexical=lexical, bar=cfg.agreement_bar,
                     n_resamples=cfg.n_resamples, seed=cfg.seed)
    diag["sources"] = {"evaluation": f"{sets.sources['evaluation']} + counterfactual answers (lab.judge.counterfactual)"}
    return vrep, diag


def lexical_dval(lexical: Any, sets: Any, cfg: Any, sample: int | None) -> dict[str, Any]:
    """The lexical baseline on the same (sampled) diagnostic validation items as a judge."""
    from lab.judge.calibrate import agreement_of, as_input

    dval = _sample(sets.diagnostic_validation, sample, cfg.seed)
    got = lexical.judge([as_input(i) for i in dval])
    labels = [i.label for i in dval]
    return _with_verdicts(agreement_of(got, labels, n_resamples=cfg.n_resamples, seed=cfg.seed), got, labels)


def _with_verdicts(rep: dict[str, Any], judgments: list[Any], labels: list[int]) -> dict[str, Any]:
    """``rep`` plus the item-by-item verdicts for paired comparisons; a failed judgment (no verdict)
    counts as a wrong one there."""
    return {**rep, "labels": list(labels),
            "verdicts": [j.verdict if j.verdict is not None else 1 - y for j, y in zip(judgments, labels, strict=True)]}


def diagnostic_guard(judge_dval: dict[str, Any], lexical_dval: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """Whether a grounded judge is admissible as the default: its kappa on the length-balanced
    validation items is not significantly below the lexical baseline's on the same items (the upper
    end of the paired bootstrap CI of the difference is >= 0). A judge that learned HaluEval's
    answer-length shortcut fails this while scoring well on the plain items."""
    from lab.metrics.agreement import paired_difference

    a, b = judge_dval.get("verdicts"), lexical_dval.get("verdicts")
    if not a or not b or judge_dval.get("labels") != lexical_dval.get("labels"):
        return {"admissible": False, "why": "no paired verdicts on the diagnostic validation items"}
    d = paired_difference(judge_dval["labels"], a, b, statistic="kappa", n_resamples=cfg.n_resamples, seed=cfg.seed)
    ok = d["diff_ci"] is not None and d["diff_ci"][1] >= 0
    return {"admissible": bool(ok), "kappa_minus_lexical": d["diff"], "ci": d["diff_ci"], "n": d["n"]}


def shortcut_veto(judge: Any, shortcuts: Any, cfg: Any, *, sample: int | None = None) -> dict[str, Any]:
    """``judge`` on the equal-length and paraphrase pairs (:func:`lab.judge.shortcuts.shortcut_report`;
    a seeded sample of ``sample`` pairs of each kind for a sampled judge): the figures and the veto."""
    from dataclasses import replace

    from lab.judge.shortcuts import VetoRule, shortcut_report

    if sample is not None:
        shortcuts = replace(shortcuts, equal_length=_sample(shortcuts.equal_length, sample, cfg.seed),
                            paraphrase=_sample(shortcuts.paraphrase, sample, cfg.seed))
    report = shortcut_report(judge, shortcuts, VetoRule(n_resamples=cfg.n_resamples, seed=cfg.seed))
    report["sources"] = {"evaluation": f"{cfg.shortcuts} (lab judge make-data: faithful answers, paraphrases, "
                                       f"planted errors)"}
    return report


def with_shortcuts(entry: dict[str, Any] | None, veto: dict[str, Any]) -> dict[str, Any]:
    """A judge's guard entry with the shortcut veto added: admissible only if both admit it."""
    from lab.judge.shortcuts import guard_entry

    new = guard_entry(veto)
    if entry is None:
        return {"admissible": new["admissible"], "shortcuts": new}
    return {**entry, "admissible": bool(entry["admissible"] and new["admissible"]), "shortcuts": new}


def choose_default(val_kappa: dict[str, float], guard: dict[str, dict[str, Any]]) -> str:
    """The best validation kappa among the judges the diagnostic guard admits (judges without a
    guard entry, the lexical baseline and every judge of an ungrounded task, are admitted)."""
    admitted = {k: v for k, v in val_kappa.items() if guard.get(k, {}).get("admissible", True)}
    if not admitted:
        raise ValueError(f"no judge to choose from among {sorted(val_kappa)}")
    return max(admitted, key=lambda k: admitted[k])


def _row(task: str, judge: Any, split: str, rep: dict[str, Any], sampled: bool) -> dict[str, Any]:
    return {"task": task, "judge": judge.name, "kind": judge.kind, "rubric": judge.rubric_id, "split": split,
            **{k: rep.get(k) for k in ("n", "n_scored", "accuracy", "accuracy_ci", "f1", "f1_ci", "kappa", "kappa_ci",
                                      "parse_failures", "generation_failures", "cache_hits", "below_bar")},
            "threshold": getattr(judge, "threshold", None), "sampled": sampled}


def score_arms(cfg: Any, root: Path, judge_name: str, *, progress: bool = True,
               thresholds: dict[str, Any] | None = None) -> pd.DataFrame:
    """Each fine-tune arm's answers judged against the source paragraph (and the retrieved passages);
    ``thresholds``: the prompted judges' chosen cuts (judges.json's)."""
    from lab.handoff.judges import models_dir
    from lab.judge.base import JudgeInput, tally
    from lab.judge.catalog import make_judge
    from lab.judge.ragas_bridge import ragas_string_metrics
    from lab.metrics.stats import bootstrap_ci

    judge = make_judge(judge_name, "grounded", cfg, root, models_dir=models_dir(root / cfg.out_dir),
                       thresholds=thresholds)
    source_of = answer_sources(cfg, root)
    preds = [p for recs in read_predictions(cfg.resolve(cfg.answers, root)).values() for p in recs]
    rows = []
    for against in ("source paragraph", "retrieved passages"):
        by_arm: dict[str, list[dict[str, Any]]] = {}
        for p in preds:
            if against == "retrieved passages" and not p.get("contexts"):
                continue
            by_arm.setdefault(p["arm"], []).append(p)
        for arm, items in by_arm.items():
            inputs = [JudgeInput(question=p["question"], answer=p["prediction"] or "(no answer)",
                                 context=source_of(p["id"]) if against == "source paragraph"
                                 else "\n\n".join(p["contexts"])) for p in items]
            got = judge.judge(inputs)
            verdicts = [j.verdict for j in got if j.verdict is not None]
            rate = sum(verdicts) / len(verdicts) if verdicts else None
            ci = bootstrap_ci(verdicts, n_resamples=cfg.n_resamples, seed=cfg.seed)[1:] if len(set(verdicts)) > 1 \
                else ((rate, rate) if verdicts else (None, None))
            t = tally(got)
            strings = [ragas_string_metrics(p["prediction"], p["answers"]) for p in items]
            rows.append({"arm": arm, "against": against, "judge": judge.name, "n": len(items), "n_scored": len(verdicts),
                         "hallucination_rate": rate, "ci_low": ci[0], "ci_high": ci[1],
                         "parse_failures": t["parse_failures"], "cache_hits": t["cache_hits"],
                         **{k: sum(x[k] for x in strings) / len(strings) for k in strings[0]}})
    return pd.DataFrame(rows)


def answer_sources(cfg: Any, root: Path) -> Any:
    """``question id -> the text its answer is judged against``, by ``cfg.task``: the SQuAD paragraph
    the question was written from, or the test set question's reference excerpts (reviewed set).

    The returned function raises :class:`~lab.errors.DataError` for an id the source lacks (the
    predictions and the task are of different runs)."""
    from lab.errors import DataError

    t = cfg.task
    if t.kind == "squad":
        from lab.data.squad import read_paragraphs

        paragraphs = read_paragraphs(cfg.resolve(t.paragraphs, root))
        para_of: dict[str, str] = {}
        for rec in read_jsonl(cfg.resolve(t.qa, root)):
            para_of[rec["id"]] = rec["paragraph_id"]
        texts = {qid: paragraphs[pid].text for qid, pid in para_of.items()}
        where = t.qa
    else:
        from lab.handoff.reviewed_set import read_testset_items

        texts = {it.id: it.excerpt for it in read_testset_items(cfg.resolve(t.questions, root)).items if it.references}
        where = t.questions

    def source_of(qid: Any) -> str:
        if qid not in texts:
            raise DataError(f"{cfg.answers}: question {qid!r} is not in {where}; the predictions and judge_eval.task "
                            "name different question sets (point task at the fine-tune comparison's, or rerun it)")
        return texts[qid]

    return source_of


def side_by_side(cfg: Any, root: Path, sets: Any, default_name: str, lexical: Any, *,
                 thresholds: dict[str, Any] | None = None) -> pd.DataFrame:
    """lab's default and lexical judges, ragas' faithfulness (through a lab backend) and MLflow's
    ``genai.evaluate`` with the lab judge as a scorer, on ONE seeded sample of grounded evaluation items."""
    from lab.handoff.judges import models_dir
    from lab.judge.calibrate import agreement_of, as_input
    from lab.judge.catalog import TRAINED_NAME, make_judge

    n = cfg.ragas.sample if cfg.ragas is not None else 50
    items = _sample(sets.evaluation, n, cfg.seed)
    labels = [i.label for i in items]
    models = models_dir(root / cfg.out_dir)
    default = make_judge(default_name, "grounded", cfg, root, models_dir=models, thresholds=thresholds)
    rows = []

    def add(via: str, judge: Any, got: list[Any]) -> None:
        rep = agreement_of(got, labels, n_resamples=cfg.n_resamples, seed=cfg.seed)
        verdicts = [j.verdict for j in got if j.verdict is not None]
        rows.append({"via": via, "judge": judge.name, "n": len(items), "n_scored": rep["n_scored"],
                     "parse_failures": rep["parse_failures"],
                     "unfaithful_rate": sum(verdicts) / len(verdicts) if verdicts else None,
                     "accuracy": rep.get("accuracy"), "kappa": rep.get("kappa"), "kappa_ci": rep.get("kappa_ci")})

    inputs = [as_input(i) for i in items]
    lab_judges = [default, lexical]
    trained = models / TRAINED_NAME["grounded"]
    if (trained / "meta.json").is_file():   # the trained model judge too, where the default is a rule
        lab_judges.append(make_judge(TRAINED_NAME["grounded"], "grounded", cfg, root, models_dir=models))
    for judge in {j.name: j for j in lab_judges}.values():   # each once (the default may be one of them)
        add("lab", judge, judge.judge(inputs))
    if cfg.ragas is not None:
        from lab.judge.ragas_bridge import RagasFaithfulnessJudge

        rj = RagasFaithfulnessJudge(cfg.ragas.name, cfg.ragas.backend, max_new_tokens=cfg.ragas.max_new_tokens)
        add("ragas", rj, rj.judge(inputs))
    if cfg.mlflow_evaluate:
        from lab.judge.mlflow_scorers import evaluate_in_mlflow

        metrics = evaluate_in_mlflow([default], items, run_name=f"genai-evaluate-{default.name}", root=root)
        mean = next((v for k, v in metrics.items() if k.endswith("/mean")), None)
        rows.append({"via": "mlflow.genai.evaluate", "judge": default.name, "n": len(items), "n_scored": None,
                     "parse_failures": None, "unfaithful_rate": mean, "accuracy": None, "kappa": None, "kappa_ci": None})
    return pd.DataFrame(rows)
