"""Export the winner: pick the generation arm and retrieval configuration, write a serving bundle,
register it in the MLflow model registry.

The bundle is a folder the gateway (:mod:`lab.serve`) reads and nothing else::

    bundle.json      model reference, vLLM engine arguments, prompt version, retrieval config, k,
                     guardrail policy, provenance (git commit, data hashes, MLflow run ids)
    index/           the retriever saved by :meth:`lab.retrieval.Retriever.save`, built by
                     :class:`lab.retrieval.configured.ConfiguredRetriever` (the sweep's and the RAG
                     arms' code), so serving searches the very index the offline evaluation searched
    passages.jsonl   doc id -> passage text (what the prompt quotes and the answer cites)
    eval.jsonl       the held-out questions with their references and the offline scores (the canary)

Winner rule (documented here and in ``bundle.json['choice']``): arms that did not run or have no
score for the metric are dropped with their reason; the best arm by the metric's mean is found;
every arm whose 95% bootstrap CI overlaps the best's CI is a candidate (the data cannot tell them
apart); among candidates the one with the lowest ``relative_cost`` (inference cost per question
relative to zero-shot) wins, then the better mean, then the arm order of the study.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from lab.errors import DataError, LabError

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"


class ExportError(LabError):
    """No arm can be exported, or a bundle is incomplete."""


@dataclass
class ArmScore:
    """One arm's metric over the held-out questions, with its CI and inference cost."""

    arm: str
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    relative_cost: float | None
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

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "scores": [asdict(s) for s in self.scores]}


RULE = ("best mean; arms whose 95% CI overlaps the best's are candidates; the cheapest candidate "
        "(relative_cost) wins, then the better mean, then study order")


def read_predictions(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``predictions.jsonl`` of the fine-tune comparison: arm -> its records (id, question, answers,
    prediction[, contexts]), file order. Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found; run the fine-tune comparison "
                        "(`dvc repro finetune_comparison`)")
    out: dict[str, list[dict[str, Any]]] = {}
    for no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{no}: not valid JSON ({exc.msg})") from None
        missing = [k for k in ("arm", "id", "answers", "prediction") if k not in rec]
        if missing:
            raise DataError(f"{path}:{no}: missing key(s) {missing}; each line needs arm, id, answers, prediction")
        out.setdefault(rec["arm"], []).append(rec)
    if not out:
        raise DataError(f"{path}: no predictions in the file")
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
               servable: Sequence[str] | None = None) -> ArmChoice:
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
    win = min(candidates, key=lambda s: (math.inf if s.relative_cost is None else s.relative_cost,
                                         -sign * s.mean, order[s.arm]))
    return ArmChoice(win.arm, metric, mode, best.arm, [s.arm for s in candidates], RULE, scores)


# --------------------------------------------------------------------------- the bundle
@dataclass
class ServedModel:
    """What vLLM (or a lab backend) serves: a base model directory and, for an adapter arm, a LoRA."""

    base: str                      # an HF directory (or hub id) the server loads
    adapter: str | None = None     # a PEFT adapter folder, served as a LoRA module
    served_name: str = "lab"       # the model name clients send
    spec: str | None = None        # the model-store spec it came from

    def vllm_args(self, *, max_model_len: int = 2048, max_lora_rank: int = 8) -> list[str]:
        """vLLM OpenAI-server arguments for this model (without host and port)."""
        args = ["--model", self.base, "--served-model-name", self.served_name if self.adapter is None
                else f"{self.served_name}-base", "--max-model-len", str(max_model_len), "--dtype", "auto"]
        if self.adapter is not None:
            args += ["--enable-lora", "--max-lora-rank", str(max_lora_rank),
                     "--lora-modules", f"{self.served_name}={self.adapter}"]
        return args


def write_bundle(out_dir: str | Path, *, retrieval_config: Mapping[str, Any], corpus: Mapping[str, Mapping[str, str]],
                 model: ServedModel, choice: ArmChoice, rag_k: int, prompt_version: str,
                 eval_items: Sequence[Mapping[str, Any]] = (), guardrails: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None, store_dir: str | Path | None = None,
                 embed: Any = None, max_model_len: int = 2048) -> Path:
    """Build the index with the studies' code and write the bundle folder atomically (a reader sees
    the old bundle or the new one)."""
    from lab.io import atomic_dir
    from lab.retrieval.configured import ConfiguredRetriever

    retriever = ConfiguredRetriever(retrieval_config, corpus, embed=embed, store_dir=store_dir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        retriever.retriever.save(tmp / "index")
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for doc_id, text in retriever.passages.items():
                title = corpus[doc_id].get("title", "")
                fh.write(json.dumps({"id": doc_id, "title": title, "text": text}, ensure_ascii=False) + "\n")
        with open(tmp / "eval.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(dict(item), ensure_ascii=False) + "\n" for item in eval_items)
        bundle = {
            "format": BUNDLE_FORMAT,
            "arm": choice.arm,
            "choice": choice.to_dict(),
            "model": asdict(model),
            "vllm_args": model.vllm_args(max_model_len=max_model_len),
            "prompt": {"version": prompt_version, "rag": choice.arm in ("rag", "lora_rag"), "k": rag_k},
            "retrieval": {"config": dict(retrieval_config), "params": retriever.params(), "k": rag_k},
            "guardrails": dict(guardrails) if guardrails else None,
            "provenance": dict(provenance or {}),
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2, sort_keys=True, default=str) + "\n",
                                       encoding="utf-8")
    return out_dir


def read_bundle(path: str | Path) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked: the format and the files the gateway needs."""
    path = Path(path)
    meta = path / BUNDLE_FILE
    if not meta.is_file():
        raise ExportError(f"{path}: not a serving bundle ({BUNDLE_FILE} missing); write one with "
                          "`dvc repro export` or lab.export.write_bundle")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{meta}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if data.get("format") != BUNDLE_FORMAT:
        raise ExportError(f"{meta}: bundle format {data.get('format')!r}, this lab reads format {BUNDLE_FORMAT}")
    for name in ("index", "passages.jsonl"):
        if not (path / name).exists():
            raise ExportError(f"{path}: {name} missing from the bundle; export it again")
    for key in ("model", "prompt", "retrieval"):
        if not isinstance(data.get(key), dict):
            raise ExportError(f"{meta}: key {key!r} missing or not a mapping; export the bundle again")
    return data


def register(bundle_dir: str | Path, name: str, *, tags: Mapping[str, str] | None = None,
             root: Path | None = None) -> str:
    """Log the bundle folder as artifacts of an MLflow run and register it as a new version of the
    registered model ``name``; returns the version. The ``champion`` alias is NOT moved here: only
    the promotion gate moves it (:func:`promote`)."""
    import mlflow

    from lab import tracking

    tracking.setup(root=root)
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="lab serving bundles (lab.export)")
    with mlflow.start_run(run_name=f"export {name}", nested=mlflow.active_run() is not None) as run:
        mlflow.set_tags({"lab.kind": "export", **dict(tags or {})})
        mlflow.log_artifacts(str(bundle_dir), artifact_path="bundle")
        source = f"{run.info.artifact_uri}/bundle"
    mv = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=dict(tags or {}))
    return str(mv.version)


def promote(name: str, version: str, gate: Mapping[str, Any], *, alias: str = "champion",
            root: Path | None = None) -> bool:
    """Record the promotion gate's result on the model version; move ``alias`` only when it passed."""
    import mlflow

    from lab import tracking

    tracking.setup(root=root)
    client = mlflow.MlflowClient()
    passed = bool(gate.get("passed"))
    client.set_model_version_tag(name, version, "gate.passed", str(passed).lower())
    client.set_model_version_tag(name, version, "gate.result", json.dumps(dict(gate), sort_keys=True, default=str)[:5000])
    if passed:
        client.set_registered_model_alias(name, alias, version)
    return passed


def bundle_from_registry(uri: str, dst: str | Path, *, root: Path | None = None) -> Path:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` downloaded to ``dst``; the bundle folder."""
    import mlflow

    from lab import tracking

    if not uri.startswith("models:/"):
        raise ExportError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    tracking.setup(root=root)
    client = mlflow.MlflowClient()
    rest = uri[len("models:/"):]
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = rest.rsplit("/", 1)
            mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        raise ExportError(f"{uri}: not in the model registry ({exc.message.splitlines()[0]})") from None
    local = mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(dst))
    return Path(local)
