"""The fine-tune comparison: prompt engineering vs RAG vs LoRA vs full fine-tuning (vs QLoRA on CUDA).

Turns the seed's cost table (full fine-tuning $$$$, LoRA/QLoRA $$, RAG $, prompts ¢) into a
measurement on one domain: a few SQuAD articles whose questions are split into train and held-out
(:mod:`lab.data.domain`), or your own documents and the train and held-out splits of a test set
generated over them and reviewed (``task: {kind: testset, ...}``, :func:`domain_task`). Every arm answers the same held-out questions with the same generation
backend and is scored with SQuAD's exact match and token F1 (plus answer-in-context for RAG arms);
every arm's cost is measured: training wall time, peak memory of the training process, trainable
parameters, inference time per question and tokens/s, and a relative cost signal
(``relative_cost``: compute to train once and answer 1,000 questions, over zero-shot's).

Each training arm trains in a fresh child process, so its peak memory is its own and a crash
cannot take the study down; training resumes from its last checkpoint and a finished model is
reused (see :mod:`lab.finetune`).

(Over 500 lines on purpose: one study is one module, and no study imports another; the arms,
their answer cache, the comparison and the result the stage writes share one ArmResult.)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.models import torch_device
from lab.stage import StagePaths, stage

#: Columns of an arm's row that measure this machine (wall times, throughput, memory) rather than the
#: study's result: they go to ``timings.csv``, never to ``results.csv``, so a rerun on another machine
#: reproduces ``results.csv`` exactly and what is compared across machines never holds a timing.
TIMING_COLUMNS = ("train_s", "train_peak_rss_mb", "infer_s", "infer_s_per_question", "tokens_per_s",
                  "relative_cost")

#: Held-out questions whose answer loss the trainer evaluates (the first ones of the held-out set).
HELDOUT_LOSS_QUESTIONS = 32
TRAINED = {"lora": "lora", "full": "full", "lora_rag": "lora", "qlora": "qlora"}
RAG_ARMS = {"rag", "lora_rag"}


@dataclass
class ArmResult:
    """Quality and cost of one arm (or why it was skipped)."""

    arm: str
    metrics: dict[str, float] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    final_dir: str | None = None
    predictions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # figures that could not be had, and why
    per_question: Any = None                          # question id -> exact_match, f1 (a DataFrame)
    unanswerable: list[dict[str, Any]] = field(default_factory=list)  # answers to unanswerable questions, refused?


def _cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def _train_in_child(train: list[dict], evalset: list[dict], cfg: Any, out_dir: str) -> dict[str, Any]:
    """Run :func:`lab.finetune.finetune` in a spawned process; return its result as a dict.

    An interrupt (Ctrl-C reaching the kernel) stops the child at once: its checkpoints are written
    atomically, so the rerun resumes from the last one; the child also dies with the kernel.
    """
    from lab.procs import call_in_child

    return call_in_child(_train_entry, train, evalset, cfg, out_dir)


def _train_entry(train: list[dict], evalset: list[dict], cfg: Any, out_dir: str) -> dict[str, Any]:
    from lab.finetune import finetune

    # progress=True: the child's standard error is the stage's progress log (lab.progress), so
    # step/total, loss and elapsed time reach the terminal of `dvc repro`, not the report
    res = finetune(train, evalset, cfg, out_dir, resume=True, progress=True)
    return {"final_dir": str(res.final_dir), "steps": res.steps, "resumed_from_step": res.resumed_from_step,
            "train_loss": res.train_loss, "eval_loss": res.eval_loss, "wall_s": res.wall_s,
            "peak_rss_mb": res.peak_rss_mb, "trainable_params": res.trainable_params,
            "total_params": res.total_params, "tokens_seen": res.tokens_seen}


def _backend(cfg: Any, model: Any) -> Any:
    from lab.generate import make_backend

    gen = cfg.generation
    conf: dict[str, Any] = {"backend": gen.backend}
    if gen.backend == "transformers":
        conf.update(model=model, batch_size=gen.batch_size)
        if gen.threads:
            conf["threads"] = gen.threads
    elif gen.backend == "llama-cpp":  # GGUF only: the base-model arms (a trained arm's folder is an error)
        conf.update(model=model if isinstance(model, str) else cfg.model)
        if gen.threads:
            conf["threads"] = gen.threads
    elif gen.backend in ("openai", "vllm-server"):
        conf.update(base_url=gen.base_url, model=model if isinstance(model, str) else cfg.model)
    else:
        conf.update(model=model)
    if "device" in gen.model_fields_set:
        conf["device"] = gen.device
    return make_backend({**conf, "options": dict(gen.options)})


def answer(backend: Any, prompts: Sequence[list[dict]], max_new_tokens: int) -> tuple[list[str], dict[str, float]]:
    """Greedy answers (cleaned to a short span) and the inference costs of producing them."""
    from lab.generate import GenParams
    from lab.generate.domain_qa_prompt import clean_prediction

    t0 = time.perf_counter()
    gens = backend.generate(list(prompts), GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=0,
                                                     stop=("\n",)))
    wall = time.perf_counter() - t0
    out_tokens = sum(g.tokens_out for g in gens)
    costs = {"infer_s": wall, "infer_s_per_question": wall / max(len(gens), 1),
             "tokens_in_mean": sum(g.tokens_in for g in gens) / max(len(gens), 1),
             "tokens_out_total": out_tokens, "tokens_per_s": out_tokens / wall if wall else 0.0}
    return [clean_prediction(g.text) for g in gens], costs


def run_arm(arm: str, task: Any, cfg: Any, root: Path, *, retriever: Any = None, base: Any = None) -> ArmResult:
    """Train (if the arm trains), answer the held-out questions, score; returns the arm's result."""
    from lab.data.domain import pick_shots
    from lab.finetune import load_finetuned
    from lab.generate.domain_qa_prompt import (
        PROMPT_VERSION,
        few_shot,
        training_example,
        with_context,
        zero_shot,
    )
    from lab.metrics.qa import score_predictions

    result = ArmResult(arm, params={"arm": arm, "model": cfg.model, "prompt_version": PROMPT_VERSION})
    heldout = task.heldout
    contexts = None
    if arm in RAG_ARMS:
        contexts = retriever.contexts([q.question for q in heldout], cfg.rag_k)
        result.params.update(rag_k=cfg.rag_k, retriever=json.dumps(retriever.params(), sort_keys=True))
    if arm == "few_shot":
        shots = pick_shots(task.train, cfg.few_shot_k, cfg.seed)
        prompts = [few_shot(q, shots) for q in heldout]
        result.params["few_shot_k"] = cfg.few_shot_k
    elif contexts is not None:
        prompts = [with_context(q, c) for q, c in zip(heldout, contexts, strict=True)]
    else:
        prompts = [zero_shot(q) for q in heldout]
    # a RAG arm also answers the unanswerable held-out questions (the refusal measure): they decide its answers file
    unans_key = [["unanswerable", q.question] for q in task.unanswerable] if contexts is not None else []
    model: Any = base
    answers_file: Path | None = None
    if arm in TRAINED:
        method = TRAINED[arm]
        if method == "qlora" and not _cuda():
            result.skipped = ("QLoRA needs CUDA: bitsandbytes' CPU 4-bit backward warns of silently incorrect "
                              "gradients and did not learn in measurements; run this arm on a GPU")
            return result
        t = cfg.training
        ft = t.finetune_config(method=method, model=cfg.model, seed=cfg.seed, rag=arm in RAG_ARMS)
        train_ctx = retriever.contexts([q.question for q in task.train], cfg.rag_k) if arm == "lora_rag" else None
        train = [training_example(q, contexts=train_ctx[i] if train_ctx else None) for i, q in enumerate(task.train)]
        # the loss the trainer evaluates is on HELD-OUT questions (their prompts as this arm sees them,
        # answers as targets): a first held-out slice, never a training example
        n_eval = min(HELDOUT_LOSS_QUESTIONS, len(heldout))
        evalset = [training_example(q, contexts=contexts[i] if contexts is not None else None)
                   for i, q in enumerate(heldout[:n_eval])]
        # one folder per (arm, training config, data): changing params trains anew beside the old run,
        # rerunning the same params resumes its checkpoints or reuses its finished model
        from lab.finetune.config import data_hash

        ident = hashlib.sha256(json.dumps([ft.training_dict(), ft.model, data_hash(train), data_hash(evalset)],
                                          sort_keys=True, default=str).encode()).hexdigest()[:12]
        answers_file = _answers_file(root / cfg.out_dir, arm, ident, [*prompts, *unans_key], cfg)
        if (cached := _load_answers(answers_file)) is not None:
            return cached
        info = _train_in_child(train, evalset, ft, str(root / cfg.out_dir / "arms" / f"{arm}-{ident}"))
        result.final_dir = info["final_dir"]
        result.costs.update(train_s=info["wall_s"], train_peak_rss_mb=info["peak_rss_mb"],
                            trainable_params=info["trainable_params"], total_params=info["total_params"],
                            train_steps=info["steps"], tokens_seen=info["tokens_seen"])
        result.params.update(method=method, max_steps=t.max_steps, batch_size=t.batch_size,
                             learning_rate=ft.learning_rate, resumed_from_step=info["resumed_from_step"])
        result.params["heldout_loss_questions"] = n_eval
        if info["train_loss"]:
            result.metrics["final_train_loss"] = info["train_loss"][-1][1]
        else:
            result.notes.append(f"final_train_loss: none recorded ({info['steps']} steps, resumed from step "
                                f"{info['resumed_from_step']}; the trainer logged no training loss)")
        if info["eval_loss"]:
            result.metrics["final_heldout_loss"] = info["eval_loss"][-1][1]
        else:
            result.notes.append("final_heldout_loss: none recorded (the trainer evaluated no held-out loss)")
        model = load_finetuned(info["final_dir"], device=torch_device(cfg.generation.device))
    else:
        answers_file = _answers_file(root / cfg.out_dir, arm, None, [*prompts, *unans_key], cfg)
        if (cached := _load_answers(answers_file)) is not None:
            return cached
    backend = _backend(cfg, model)
    try:
        preds, costs = answer(backend, prompts, cfg.generation.max_new_tokens)
    finally:
        if model is not base:
            backend.close()
    result.costs.update(costs)
    refs = {q.id: list(q.answers) for q in heldout}
    ctx = {q.id: c for q, c in zip(heldout, contexts, strict=True)} if contexts is not None else None
    table = score_predictions({q.id: p for q, p in zip(heldout, preds, strict=True)}, refs, contexts=ctx,
                              metrics=["exact_match", "f1"] + (["answer_in_context"] if ctx else []))
    result.metrics.update({k: float(v) for k, v in table.attrs["means"].items()})
    result.per_question = table
    result.predictions = [{"id": q.id, "question": q.question, "answers": list(q.answers), "prediction": p,
                           **({"contexts": contexts[i]} if contexts is not None else {})}
                          for i, (q, p) in enumerate(zip(heldout, preds, strict=True))]
    if contexts is not None and task.unanswerable:
        backend = _backend(cfg, model)
        try:
            _measure_refusal(result, backend, task.unanswerable, retriever, cfg)
        finally:
            if model is not base:
                backend.close()
    _save_answers(answers_file, result)
    return result


def _measure_refusal(result: ArmResult, backend: Any, unanswerable: Sequence[Any], retriever: Any, cfg: Any) -> None:
    """What the served system does with questions its corpus does not answer: a RAG arm answers the
    test set's held-out ``unanswerable`` questions with the gateway's prompt (retrieved passages, the
    same template), and the gateway's own refusal rule (:func:`lab.generate.refusal.refusal_reason`,
    what the ``refusal`` guardrail a policy's ``fallback`` acts on fires on) decides whether it declined. Also counted on the answerable
    held-out questions (a false refusal there is a lost answer). Metrics ``refusal_rate_unanswerable``
    and ``refusal_rate_answerable``; the answers to the unanswerable questions are kept in
    :attr:`ArmResult.unanswerable` (``unanswerable.jsonl``, and the report)."""
    from lab.generate.domain_qa_prompt import with_context, zero_shot
    from lab.generate.refusal import refusal_reason
    ctx = retriever.contexts([q.question for q in unanswerable], cfg.rag_k)
    # as the gateway builds it (lab.serve.rag): no passage retrieved, no context section
    prompts = [with_context(q, c) if c else zero_shot(q) for q, c in zip(unanswerable, ctx, strict=True)]
    preds, _ = answer(backend, prompts, cfg.generation.max_new_tokens)
    refused = [refusal_reason(p) is not None for p in preds]
    result.metrics["refusal_rate_unanswerable"] = sum(refused) / len(refused)
    answered = [refusal_reason(p["prediction"]) is not None for p in result.predictions]
    result.metrics["refusal_rate_answerable"] = sum(answered) / max(len(answered), 1)
    result.params["n_unanswerable"] = len(refused)
    result.unanswerable = [{"id": q.id, "question": q.question, "prediction": p, "refused": r}
                           for q, p, r in zip(unanswerable, preds, refused, strict=True)]


# --------------------------------------------------------------------------- finished arms, kept
def _answers_file(out_dir: Path, arm: str, train_ident: str | None, prompts: Sequence[Any], cfg: Any) -> Path:
    """Where a finished arm's scored answers are kept: named by everything that decides them (the
    arm, the trained model's identity, every prompt, the model spec and its content revision for a
    local directory, the generation settings, and the code of this study's import closure)."""
    from lab.imports import code_id

    spec = str(cfg.model)
    revision = None
    if Path(spec).expanduser().is_dir():
        from lab.models import _dir_revision

        revision = _dir_revision(Path(spec).expanduser())
    key = json.dumps({"arm": arm, "train": train_ident, "model": spec, "revision": revision,
                      "prompts": list(prompts), "generation": {**cfg.generation.model_dump(mode="json"), "device": torch_device(cfg.generation.device)},
                      "code": code_id([__name__])}, sort_keys=True, default=str)
    return Path(out_dir) / "arms" / f"answers-{arm}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def _save_answers(path: Path | None, result: ArmResult) -> None:
    if path is None:
        return
    import pandas as pd

    from lab.io import write_text

    pq = result.per_question
    data = {"arm": result.arm, "metrics": result.metrics, "costs": result.costs, "params": result.params,
            "final_dir": result.final_dir, "predictions": result.predictions, "notes": result.notes,
            "unanswerable": result.unanswerable,
            "per_question": None if pq is None else {"index_name": pq.index.name, "index": list(pq.index),
                                                       "index_dtype": str(pq.index.dtype),
                                                       "columns": {c: pq[c].tolist() for c in pq.columns},
                                                       "attrs": pq.attrs}}
    assert pq is None or isinstance(pq, pd.DataFrame)
    write_text(path, json.dumps(data, default=str))  # atomic: a killed run leaves no half file


def _load_answers(path: Path) -> ArmResult | None:
    """A finished arm's result kept by an earlier run (None when there is none, it is unreadable, or
    its trained model is gone); says so on standard error, as a resumed training does."""
    import sys

    import pandas as pd

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("final_dir") and not Path(data["final_dir"]).is_dir():
        return None
    r = ArmResult(data["arm"], metrics=data["metrics"], costs=data["costs"], params=data["params"],
                  final_dir=data["final_dir"], predictions=data["predictions"], notes=data["notes"],
                  unanswerable=data.get("unanswerable", []))
    pq = data.get("per_question")
    if pq is not None:
        df = pd.DataFrame(pq["columns"], index=pd.Index(pq["index"], name=pq["index_name"],
                                                              dtype=pq.get("index_dtype")))
        df.attrs.update(pq["attrs"])
        r.per_question = df
    print(f"finetune_comparison {r.arm}: answers of an earlier run with the same models, prompts, settings "
          f"and code reused ({path.name})", file=sys.stderr, flush=True)
    return r


def domain_task(cfg: Any, root: Path) -> Any:
    """The :class:`lab.data.domain.DomainTask` of ``cfg.task``: SQuAD articles split by hash, or a
    test set's own splits (reviewed where a review exists) over its corpus folder's documents.

    Raises
    ------
    DataError
        A missing or malformed test set or corpus (the message names the file and the stage that
        writes it), or too few questions.
    """
    from lab.data.domain import build_domain_task, build_testset_task

    t = cfg.task
    if t.kind == "squad":
        return build_domain_task(root / t.paragraphs, root / t.qa, t.titles, n_train=cfg.n_train,
                                 n_heldout=cfg.n_heldout, seed=cfg.seed)
    from lab.data.benchmarks import corpus_documents
    from lab.handoff.reviewed_set import read_testset_items

    testset = read_testset_items(cfg.resolve(t.questions, root))
    corpus = cfg.resolve(t.corpus_dir, root)
    if not corpus.is_dir():
        from lab.errors import DataError

        raise DataError(f"{corpus}: corpus folder not found (finetune_comparison.task.corpus_dir); the ingest stage "
                        f"writes it (`dvc repro ingest`, or `lab ingest SRC... --out {corpus.parent}`)")
    task = build_testset_task(testset.items, corpus_documents(corpus), n_train=cfg.n_train, n_heldout=cfg.n_heldout,
                              seed=cfg.seed, source=str(testset.path))
    task.counts["reviewed"] = int(testset.reviewed)
    return task


def run_comparison(cfg: Any, root: Path, *, progress: bool = True, task: Any = None) -> tuple[list[ArmResult], Any]:
    """Every arm of a :class:`lab.config.FinetuneComparisonConfig`, base-model arms sharing one load;
    with the arms manifest (:func:`arms_manifest`) the stage writes beside the predictions. ``task``:
    the :func:`domain_task` of ``cfg`` when the caller has it."""
    from lab.handoff.winner import read_winner_config
    from lab.models import load_causal_lm
    from lab.progress import bar
    from lab.retrieval.configured import corpus_retriever

    task = task if task is not None else domain_task(cfg, root)
    retriever = None
    if any(a in RAG_ARMS for a in cfg.arms):
        retriever = corpus_retriever(read_winner_config(root / cfg.winner), task.corpus_kind, task.paragraphs)
    base = None
    if cfg.generation.backend == "transformers" and any(a not in TRAINED for a in cfg.arms):
        base = load_causal_lm(cfg.model, device=torch_device(cfg.generation.device))
    results = []
    for arm in bar(cfg.arms, desc="arms", enable=progress):
        results.append(run_arm(arm, task, cfg, root, retriever=retriever,
                               base=base if base is not None else cfg.model))
    _relative_costs(results)
    return results, arms_manifest(cfg, task, retriever, results)


def arms_manifest(cfg: Any, task: Any, retriever: Any, results: Sequence[ArmResult]) -> Any:
    """The arms manifest (:mod:`lab.handoff.arms`) written next to ``predictions.jsonl``: each arm's
    model folder, prompt version and generation settings, the retrieval and corpus; what export serves."""
    from lab.handoff.arms import manifest_from_study

    # the settings answer() generates with (greedy, cut at the first newline)
    gen = {"max_new_tokens": cfg.generation.max_new_tokens, "temperature": 0.0, "seed": 0, "stop": ["\n"]}
    arms = [{"name": r.arm, "model": cfg.model, "prompt_version": r.params["prompt_version"], "generation": gen,
             "rag": r.arm in RAG_ARMS, "method": TRAINED.get(r.arm), "trained_dir": r.final_dir, "skipped": r.skipped}
            for r in results]
    retrieval = {"config": retriever.config, "k": cfg.rag_k} if retriever is not None else None
    return manifest_from_study(arms, retrieval=retrieval, paragraphs=task.paragraphs, heldout=task.heldout,
                               corpus_kind=task.corpus_kind)


def _relative_costs(results: Sequence[ArmResult]) -> str:
    """``relative_cost``: (train once + answer 1,000 questions) / the base arm's cost to answer 1,000.

    The base is zero-shot; when zero-shot did not run, the arm that answers fastest. Every row names
    its base (``relative_cost_base``), and the base is returned, so a table or plot never claims
    "zero-shot = 1" over another base.
    """
    ref = next((r for r in results if r.arm == "zero_shot" and not r.skipped), None)
    if ref is None:
        ran = [r for r in results if not r.skipped]
        if not ran:
            raise LabError("no arm ran")
        ref = min(ran, key=lambda r: r.costs["infer_s_per_question"])
    unit = 1000 * ref.costs["infer_s_per_question"]
    for r in results:
        if not r.skipped:
            r.costs["relative_cost"] = (r.costs.get("train_s", 0.0) + 1000 * r.costs["infer_s_per_question"]) / unit
            r.params["relative_cost_base"] = ref.arm
    return ref.arm


def table(results: Sequence[ArmResult]) -> Any:
    """One row per arm: quality, costs, and why an arm was skipped."""
    import pandas as pd

    rows = [{"arm": r.arm, **r.metrics, **r.costs, "relative_cost_base": r.params.get("relative_cost_base", ""),
             "skipped": r.skipped or "", "notes": "; ".join(r.notes)} for r in results]
    return pd.DataFrame(rows)


def split_timings(df: Any) -> tuple[Any, Any]:
    """``(results, timings)``: the arm table without :data:`TIMING_COLUMNS`, and ``arm`` with them
    (plus ``relative_cost_base``, which names the arm ``relative_cost`` is relative to)."""
    timing = [c for c in TIMING_COLUMNS if c in df.columns]
    keep = ["arm"] + [c for c in ("relative_cost_base",) if c in df.columns]
    return df.drop(columns=timing + keep[1:]), df[keep + timing]


@dataclass
class FinetuneResult:
    """The comparison's outcome: every arm's result and the paired comparison against the base arm."""

    arms: list[ArmResult]
    comparison: Any
    manifest: Any = None          # lab.handoff.arms.ArmsManifest: what export serves
    root: Path | None = None      # trained folders are written relative to it
    task: Any = None              # lab.data.domain.DomainTask: its counts are reported for a test set task

    def _testset_counts(self) -> dict[str, float]:
        """A test set task's sizes and set-asides (none for a SQuAD task, whose outputs stay as they were)."""
        if self.task is None or self.task.corpus_kind == "squad":
            return {}
        return {"n_train": len(self.task.train), "n_heldout": len(self.task.heldout), **self.task.counts}

    def table(self) -> Any:
        """One row per arm (see :func:`table`)."""
        return table(self.arms)

    def metrics(self) -> dict[str, float]:
        """``<arm>.<metric>`` for every arm that ran (quality and losses; no timings); for a test set
        task also ``task.<count>`` (sizes, unanswerable questions set aside for a refusal measure...)."""
        out = {f"{r.arm}.{k}": v for r in self.arms if not r.skipped for k, v in r.metrics.items()}
        return {**out, **{f"task.{k}": v for k, v in self._testset_counts().items()}}

    def finding(self) -> str:
        return summary(self.arms, self.comparison)

    def write(self, out_dir: Path) -> None:
        """``results.csv`` (what must reproduce), ``timings.csv`` (this machine's times),
        ``comparison.csv``, ``metrics.json``, ``predictions.jsonl``, the plots and their data."""
        from lab import viz
        from lab.handoff.arms import ARMS_FILE, write_arms
        from lab.handoff.predictions import FILE as PREDICTIONS
        from lab.handoff.predictions import write_predictions
        from lab.io import write_csv, write_json, write_lines

        out_dir = Path(out_dir)
        results, timings = split_timings(self.table())
        write_csv(out_dir / "results.csv", results.round(5))
        write_csv(out_dir / "timings.csv", timings.round(5))
        write_csv(out_dir / "comparison.csv", self.comparison.round(5))   # CIs, paired differences, p-values
        write_json(out_dir / "metrics.json", self.metrics())
        write_predictions(out_dir / PREDICTIONS, ({"arm": r.arm, **p} for r in self.arms for p in r.predictions))
        if any(r.unanswerable for r in self.arms):   # a test set task with unanswerable held-out questions
            write_lines(out_dir / "unanswerable.jsonl",
                        (json.dumps({"arm": r.arm, **u}) + "\n" for r in self.arms for u in r.unanswerable))
        if self.manifest is not None:
            write_arms(out_dir / ARMS_FILE, self.manifest, self.root or out_dir)
        df = self.table()
        ran = df[df.skipped == ""]
        base = relative_cost_base(self.arms)
        fig = viz.scatter_labeled(ran.assign(f1_pct=100 * ran.f1), "relative_cost", "f1_pct", "arm",
                                  title="Quality vs cost per arm", xlabel="relative cost (train once + 1,000 "
                                  f"answers; {base} = 1)", ylabel="token F1 (%)")
        fig.axes[0].set_xscale("log")
        viz.save(fig, out_dir / "plots" / "quality_vs_cost.png")
        long = ran.melt(id_vars=["arm"], value_vars=["exact_match", "f1"], var_name="metric", value_name="score")
        fig = viz.bar_grouped(long, "arm", "metric", "score", title="Held-out quality per arm", ylabel="score")
        viz.save(fig, out_dir / "plots" / "quality_per_arm.png")
        write_csv(out_dir / "quality_vs_cost.csv",
                  ran[["arm", "f1", "exact_match", "relative_cost", "relative_cost_base"]])

    def report_sections(self, out_dir: Path) -> list[tuple[str, Any]]:
        import pandas as pd

        cols = ["arm", "exact_match", "f1", "answer_in_context", "relative_cost", "relative_cost_base", "train_s",
                "train_peak_rss_mb", "trainable_params", "infer_s_per_question", "tokens_per_s", "tokens_in_mean",
                "refusal_rate_unanswerable", "refusal_rate_answerable",
                "final_train_loss", "final_heldout_loss", "skipped", "notes"]
        df = self.table()
        ex = pd.DataFrame([{"arm": r.arm, **p} for r in self.arms for p in r.predictions])
        task = [("The test set task (questions kept, set aside, unanswerable)",
                 pd.DataFrame([self._testset_counts()]))] if self._testset_counts() else []
        unans = pd.DataFrame([{"arm": r.arm, **u} for r in self.arms for u in r.unanswerable])
        refusal = [("Questions the corpus does not answer: does the served prompt decline? (the gateway's "
                    "refusal check; refusal_rate_unanswerable should be high, refusal_rate_answerable low)",
                    unans.pivot_table(index=["question"], columns="arm", values="prediction", aggfunc="first").head(8))
                   ] if not unans.empty else []
        return [
            *task,
            ("Paired comparison (95% CIs)", self.comparison.round(3)),
            ("Quality and cost per arm", df[[c for c in cols if c in df.columns]].round(3)),
            ("Quality vs cost", out_dir / "plots" / "quality_vs_cost.png"),
            ("Quality per arm", out_dir / "plots" / "quality_per_arm.png"),
            ("Answers side by side",
             ex.pivot_table(index=["question"], columns="arm", values="prediction", aggfunc="first").head(8)
             if not ex.empty else "no answers"),
            *refusal,
        ]

    def log_runs(self) -> list[str]:
        """One MLflow child run per arm (see :func:`log_arm_runs`)."""
        return log_arm_runs(self.arms)


@stage("finetune_comparison")
def run(cfg: Any, paths: StagePaths, *, progress: bool = True) -> FinetuneResult:
    """Run every arm of ``cfg`` (:class:`lab.config.FinetuneComparisonConfig`) and compare them."""
    task = domain_task(cfg, paths.root)
    arms, manifest = run_comparison(cfg, paths.root, progress=progress, task=task)
    return FinetuneResult(arms=arms, comparison=compare(arms, n_resamples=cfg.n_resamples), manifest=manifest,
                          root=paths.root, task=task)


def relative_cost_base(results: Sequence[ArmResult]) -> str:
    """The arm whose answering cost ``relative_cost`` is relative to (see :func:`_relative_costs`)."""
    return next((r.params["relative_cost_base"] for r in results if "relative_cost_base" in r.params), "zero_shot")


def log_arm_runs(results: Sequence[ArmResult], task_stats: dict[str, Any] | None = None) -> list[str]:
    """One MLflow child run per arm, with the trained model or adapter as an artifact."""
    from lab.tracking import child_run

    ids = []
    for r in results:
        arts = {"model": Path(r.final_dir)} if r.final_dir else None
        tags = {"lab.stage": "finetune_comparison", "lab.arm": r.arm}
        if r.skipped:
            tags["lab.skipped"] = r.skipped[:250]
        params = {**r.params, **({"task": task_stats} if task_stats else {})}
        ids.append(child_run(r.arm, params=params, metrics={**r.metrics, **r.costs}, tags=tags, artifacts=arts))
    return [i for i in ids if i]


def compare(results: Sequence[ArmResult], base: str | None = None, metric: str = "f1", *,
            n_resamples: int, seed: int = 0) -> Any:
    """Per arm that ran: ``metric`` with its 95% bootstrap CI over held-out questions and the paired
    difference against ``base`` (CI, sign-flip p-value, wins/ties/losses); the base row has no
    difference. ``base`` defaults to zero-shot, or the first arm that ran when zero-shot did not;
    it is kept in ``df.attrs["base"]``. Same inputs and seed, same numbers.

    Raises
    ------
    LabError
        ``base`` did not run (the message lists the arms that did).
    """
    import pandas as pd

    from lab.metrics.stats import bootstrap_ci, paired_comparison

    ran = {r.arm: r for r in results if not r.skipped and r.per_question is not None}
    if base is None:
        base = "zero_shot" if "zero_shot" in ran else next(iter(ran), "zero_shot")
    if base not in ran:
        raise LabError(f"compare: base arm {base!r} did not run; arms that ran: {', '.join(ran) or 'none'}")
    ref = ran[base].per_question[metric]
    rows = []
    for arm, r in ran.items():
        scores = r.per_question[metric]
        mean, low, high = bootstrap_ci(scores.to_numpy(), n_resamples=n_resamples, seed=seed)
        row = {"arm": arm, metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high, "n": len(scores)}
        if arm != base:
            cmp = paired_comparison(scores, ref, n_resamples=n_resamples, seed=seed)
            row.update({f"diff_vs_{base}": cmp["mean_diff"], "diff_ci_low": cmp["ci_low"],
                        "diff_ci_high": cmp["ci_high"], "p_value": cmp["p_value"], "wins": cmp["wins"],
                        "ties": cmp["ties"], "losses": cmp["losses"],
                        "significant": bool(cmp["ci_low"] > 0 or cmp["ci_high"] < 0)})
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["base"] = base
    return out


def summary(results: Sequence[ArmResult], comparison: Any, metric: str = "f1") -> str:
    """A few sentences of Markdown: the best arm, which arms differ from the comparison's base beyond
    chance, costs, and the skipped arms; the wording says what the CIs support."""
    base = comparison.attrs.get("base", "zero_shot")
    ran = comparison.set_index("arm")
    best = ran[metric].idxmax()
    lines = [f"On {int(ran.loc[best, 'n'])} held-out questions the highest token {metric.upper()} is "
             f"**{best}** with {ran.loc[best, metric]:.3f} (95% CI {ran.loc[best, f'{metric}_ci_low']:.3f}–"
             f"{ran.loc[best, f'{metric}_ci_high']:.3f})."]
    others = ran.drop(index=base)
    sig = others[others["significant"].astype(bool)] if "significant" in others else others.iloc[0:0]
    if others.empty:
        lines.append(f"Only {base} ran: nothing to compare.")
    elif sig.empty:
        lines.append(f"No arm differs from {base} beyond chance: every paired 95% CI of the difference "
                     f"covers 0 (largest: {others[f'diff_vs_{base}'].abs().max():.3f}).")
    else:
        lines.append("Differences from " + base + " beyond chance: " + "; ".join(
            f"{a} {r[f'diff_vs_{base}']:+.3f} (CI {r['diff_ci_low']:+.3f} to {r['diff_ci_high']:+.3f}, "
            f"p = {r['p_value']:.3g})" for a, r in sig.iterrows()) + "; the other arms are indistinguishable from it.")
    costs = {r.arm: r.costs.get("relative_cost") for r in results if not r.skipped}
    cheapest = min((a for a in costs if costs[a] is not None), key=lambda a: costs[a], default=None)
    if cheapest is not None:
        lines.append(f"Cheapest (train once + 1,000 answers, relative to {relative_cost_base(results)}): "
                     f"**{cheapest}** at {costs[cheapest]:.2f}; most expensive: "
                     f"{max(costs, key=lambda a: costs[a] or 0)} at {max(c or 0 for c in costs.values()):.2f}.")
    skipped = [f"{r.arm} ({r.skipped})" for r in results if r.skipped]
    if skipped:
        lines.append("Skipped: " + "; ".join(skipped) + ".")
    return " ".join(lines)
