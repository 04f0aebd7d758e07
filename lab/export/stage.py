"""The ``export`` stage: the fine-tune comparison's arms scored from their held-out predictions, the
winner picked (:mod:`lab.export.winner`), written as a serving bundle (:mod:`lab.handoff.bundle`)
and registered in the MLflow model registry (:mod:`lab.export.registry`).

Everything about the arms comes from what the study wrote: ``predictions.jsonl`` (the answers),
``results.csv`` (the serving cost) and the arms manifest (:mod:`lab.handoff.arms`: each arm's model
folder, prompt version, generation settings, the retrieval configuration and k, the corpus it
indexed and the held-out questions). The stage never rebuilds the study's task.

Outputs (:meth:`ExportResult.write`): ``bundle/``, ``metrics.json`` and ``registry.json`` (the
registered model's name; its version number lives in this machine's MLflow store, tagged with the
bundle id, so the git-tracked file is the same on every machine).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lab.export.winner import ArmChoice, ExportError, arm_costs, choose_arm, score_arms
from lab.handoff.arms import ArmEntry, ArmsManifest, read_arms
from lab.handoff.bundle import ServedModel, read_bundle, write_bundle
from lab.handoff.predictions import read_predictions
from lab.stage import StagePaths, stage

#: Arms that answer with a LoRA adapter on the base model.
ADAPTER_METHODS = ("lora", "qlora")


def served_model(arm: ArmEntry) -> ServedModel:
    """What serves ``arm``: the base model for prompt/RAG arms, base + adapter for LoRA arms, the
    fine-tuned folder for the full arm (the folders the manifest names)."""
    from lab.models import resolve

    trained = arm.trained_dir
    if arm.method is not None and (trained is None or not Path(trained).is_dir()):
        raise ExportError(f"arm {arm.name!r}: its trained model folder {trained!r} (arms manifest) is missing; "
                          "rerun `dvc repro finetune_comparison`")
    if arm.method == "full":
        return ServedModel(str(trained), spec=None)
    ref = resolve(arm.model)
    if ref.path is None:
        if arm.method in ADAPTER_METHODS:
            raise ExportError(f"model {arm.model!r} is an endpoint: a LoRA arm needs local base weights")
        return ServedModel(arm.model, spec=arm.model)
    if arm.method in ADAPTER_METHODS:
        return ServedModel(str(ref.path), adapter=str(trained), spec=arm.model, base_revision=ref.revision)
    return ServedModel(str(ref.path), spec=arm.model, base_revision=ref.revision)


@dataclass
class ExportResult:
    """The winner and everything its bundle is written from; :meth:`write` writes the bundle,
    registers it (when the config says so) and writes ``metrics.json`` and ``registry.json``."""

    choice: ArmChoice
    arm: ArmEntry
    model: ServedModel
    retrieval: dict[str, Any]                       # {"config", "k"}
    corpus: dict[str, dict[str, Any]]               # doc id -> {"title", "text", provenance...}: the served passages
    eval_items: list[dict[str, Any]]
    provenance: dict[str, Any]
    cfg: Any                                        # lab.config.ExportConfig
    root: Path
    register_model: bool = True
    bundle_dir: Path | None = None
    bundle: dict[str, Any] = field(default_factory=dict)
    registered: dict[str, Any] | None = None

    def write(self, out_dir: Path) -> None:
        """``out_dir/bundle`` (atomic), its registration, ``metrics.json`` and ``registry.json``."""
        from lab.io import write_json

        cfg = self.cfg
        self.bundle_dir = write_bundle(
            Path(out_dir) / "bundle", retrieval_config=self.retrieval["config"], corpus=self.corpus, model=self.model,
            choice=self.choice, k=self.retrieval["k"], prompt_version=self.arm.prompt_version,
            generation=self.arm.generation, rag=self.arm.rag, eval_items=self.eval_items, guardrails=cfg.guardrails_config(),
            provenance=self.provenance, max_model_len=cfg.max_model_len, root=self.root)
        self.bundle = read_bundle(self.bundle_dir)
        if self.register_model:
            from lab.export.registry import register

            version = register(self.bundle_dir, cfg.registered_model, root=self.root,
                               tags={"arm": self.choice.arm, "bundle_id": self.provenance["bundle_id"],
                                     "git.commit": self.provenance.get("git.commit", "")})
            self.registered = {"name": cfg.registered_model, "version": version}
        write_json(Path(out_dir) / "metrics.json", self.metrics())
        # the version counts registrations in this machine's MLflow store: not in the git-tracked file
        write_json(Path(out_dir) / "registry.json", {"name": cfg.registered_model, "registered": self.registered is not None})
        from lab import viz

        viz.save(self.plot_arms(), Path(out_dir) / "plots" / "arms.png")

    def plot_arms(self) -> Any:
        """Each arm's mean with its 95% CI: the chosen one green, the other candidates blue."""
        import matplotlib.pyplot as plt

        table = self.table()
        ran = table[table["mean"].notna()].reset_index(drop=True)
        fig, ax = plt.subplots(figsize=(7, 0.5 * len(ran) + 1.5))
        for i, r in ran.iterrows():
            colour = "C2" if r["chosen"] else ("C0" if r["candidate"] else "grey")
            ax.errorbar(r["mean"], i, xerr=[[r["mean"] - r["ci_low"]], [r["ci_high"] - r["mean"]]], fmt="o",
                        color=colour, capsize=3)
        ax.set_yticks(range(len(ran)), ran["arm"])
        ax.set(xlabel=f"{self.cfg.metric} (95% CI)", title="Arms: chosen (green), candidates (blue)")
        fig.tight_layout()
        return fig

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        import pandas as pd

        from lab.handoff.bundle import bundle_vllm_args

        b = self.bundle
        bundle = pd.Series({
            "arm": b["arm"], "model": b["model"]["base"], "adapter": b["model"]["adapter"],
            "prompt": b["prompt"]["version"], "retriever": b["retrieval"]["config"]["retriever"],
            "k": b["retrieval"]["k"], "base revision": b["model"]["base_revision"],
            "vllm (on this machine)": " ".join(bundle_vllm_args(self.bundle_dir, b)),
            "bundle_id": b["provenance"]["bundle_id"], "git": b["provenance"].get("git.commit")}).to_frame("value")
        return [("Arms scored", self.table()), ("Arms: chosen and candidates", Path(out_dir) / "plots" / "arms.png"),
                ("The bundle", bundle)]

    def table(self) -> Any:
        """Every arm's score, with ``candidate`` and ``chosen`` columns (a DataFrame)."""
        import pandas as pd

        df = pd.DataFrame([asdict(s) for s in self.choice.scores])
        df["candidate"] = df["arm"].isin(self.choice.candidates)
        df["chosen"] = df["arm"] == self.choice.arm
        return df

    def metrics(self) -> dict[str, Any]:
        win = next(s for s in self.choice.scores if s.arm == self.choice.arm)
        return {"arm": self.choice.arm, "best": self.choice.best, "candidates": len(self.choice.candidates),
                self.choice.metric: win.mean, f"{self.choice.metric}_ci": [win.ci_low, win.ci_high],
                "n": win.n, "passages": len(self.corpus)}

    def finding(self) -> str:
        c = self.choice
        win = next(s for s in c.scores if s.arm == c.arm)
        others = [a for a in c.candidates if a != c.arm]
        text = (f"Exported arm **{c.arm}** ({c.metric} {win.mean:.3f}, 95% CI [{win.ci_low:.3f}, {win.ci_high:.3f}], "
                f"n={win.n}) with retrieval `{self.retrieval['config'].get('retriever')}` over "
                f"{len(self.corpus)} passages, k={self.retrieval['k']}. ")
        if c.best != c.arm:
            text += (f"The best mean was {c.best}; its CI overlaps {c.arm}'s, and {c.arm} is the cheaper to serve, "
                     "so the rule picked it. ")
        if others:
            text += f"Not distinguishable from it on this data: {', '.join(others)}. "
        if self.registered:
            text += (f"Registered as `{self.registered['name']}` version {self.registered['version']} "
                     "(the `champion` alias moves only through the promotion gate).")
        return text


@stage("export")
def run(cfg: Any, paths: StagePaths, *, register_model: bool | None = None) -> ExportResult:
    """Score the fine-tune arms from their predictions, pick the winner and gather what its bundle
    is written from (the arms manifest's model folder, settings, retrieval and corpus).

    ``cfg``: :class:`lab.config.ExportConfig`; ``register_model`` overrides ``cfg.register_model``.

    Raises
    ------
    ExportError
        No arm can be exported, or the chosen arm's model or retrieval is missing.
    DataError
        A file the study wrote is missing, old or malformed (named, with the command to rerun).
    """
    import pandas as pd

    from lab.retrieval.sets import config_chunker, folder_corpus, rag_corpus
    from lab.tracking import dvc_data_hashes, git_state

    root = paths.root
    manifest = read_arms(paths.of(cfg.manifest), root)
    preds = read_predictions(paths.of(cfg.predictions))
    results = paths.of(cfg.results)
    table = pd.read_csv(results) if results.is_file() else None
    if cfg.cost == "relative_cost":   # a wall-time figure: in the study's timings file, not results.csv
        timings = paths.of(cfg.timings)
        if table is None or not timings.is_file():
            raise ExportError(f"export.cost is relative_cost, but {timings if table is not None else results} "
                              "is missing; run `dvc repro finetune_comparison` or use cost: tokens")
        table = table.merge(pd.read_csv(timings)[["arm", "relative_cost"]], on="arm", how="left")
    costs = arm_costs(table, preds, cfg.cost)
    scores = score_arms(preds, costs, metric=cfg.metric, n_resamples=cfg.n_resamples, seed=cfg.seed,
                        arms=manifest.names())
    choice = choose_arm(scores, metric=cfg.metric, mode=cfg.mode, servable=cfg.arms, cost_measure=cfg.cost)
    arm = manifest.arm(choice.arm)
    model = served_model(arm)
    model.served_name = cfg.served_name
    if manifest.retrieval is None:
        raise ExportError(f"{cfg.manifest}: the study ran no retrieving arm, and the server answers with "
                          "retrieved sources; add rag or lora_rag to finetune_comparison.arms")
    config = manifest.retrieval["config"]
    if cfg.corpus_dir is None:   # the passages the study's RAG arms searched
        corpus = rag_corpus(manifest.corpus_kind, manifest.paragraphs(), config_chunker(config))
    else:                        # a corpus folder: its passages carry their file, pages and section
        corpus = folder_corpus(paths.of(cfg.corpus_dir), config_chunker(config))
        if not corpus:
            raise ExportError(f"export.corpus_dir {cfg.corpus_dir}: no passages (no document with text)")
    eval_items = _eval_items(manifest, preds[choice.arm])
    git = git_state(root)
    served = [choice.arm, asdict(model), manifest.retrieval, arm.prompt_version, arm.generation, cfg.guardrails_config()]
    served += [cfg.corpus_dir] if cfg.corpus_dir is not None else []   # (the study's corpus: the id as before)
    identity = json.dumps(served, sort_keys=True, default=str)
    provenance = {"bundle_id": hashlib.sha256(identity.encode()).hexdigest()[:16], **git,
                  "data": dvc_data_hashes(root), "mlflow_runs": _stage_runs(root, ("retrieval_sweep", "finetune_comparison")),
                  "predictions": str(cfg.predictions), "manifest": str(cfg.manifest)}
    if cfg.corpus_dir is not None:
        provenance["corpus_dir"] = str(cfg.corpus_dir)
    return ExportResult(choice=choice, arm=arm, model=model, retrieval=dict(manifest.retrieval), corpus=corpus,
                        eval_items=eval_items, provenance=provenance, cfg=cfg, root=root,
                        register_model=cfg.register_model if register_model is None else register_model)


def _eval_items(manifest: ArmsManifest, offline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The held-out questions with the chosen arm's offline answer and contexts (the gate's canary)."""
    by_id = {r["id"]: r for r in offline}
    return [{"id": q["id"], "question": q["question"], "answers": list(q["answers"]), "title": q["title"],
             "offline_prediction": by_id.get(q["id"], {}).get("prediction"),
             "offline_contexts": by_id.get(q["id"], {}).get("contexts")} for q in manifest.heldout]


def _stage_runs(root: Path, stages: Sequence[str]) -> dict[str, str]:
    """The latest finished MLflow run id of each stage (empty when the store has none)."""
    try:
        import mlflow

        from lab import tracking

        tracking.setup(root=root)
        exp = mlflow.get_experiment_by_name("lab")
        out = {}
        for st in stages:
            runs = mlflow.search_runs([exp.experiment_id], filter_string=f"tags.`lab.stage` = '{st}' and "
                                      "attributes.status = 'FINISHED'", order_by=["start_time DESC"],
                                      max_results=1, output_format="list") if exp else []
            if runs:
                out[st] = runs[0].info.run_id
        return out
    except Exception as exc:  # noqa: BLE001 (provenance is best effort; the bundle says why it is missing)
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
