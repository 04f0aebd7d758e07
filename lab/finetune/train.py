"""The training loop, shared by :func:`finetune` (one process) and ``finetune_ray`` (DDP workers).

Why a loop of our own and not ``transformers.Trainer``: what this study needs is (1) loss on the
answer tokens only, normalised over the whole optimizer step across micro-batches *and* workers,
(2) a resume that replays the exact data order and RNG streams, and (3) the same code under Ray
Train's DDP. Trainer can do each, but through its own checkpoint layout, data-skipping and
loss-scaling rules that change between releases; here the loop is ~100 lines one can read,
and a test proves the resumed curve equals the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import resource
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.errors import DataError, LabError
from lab.finetune.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    out_dir_lock,
    remove_partial,
    replace_dir,
    write_checkpoint,
)
from lab.finetune.config import FinetuneConfig, FinetuneResult, identity_diff, run_identity
from lab.finetune.data import Encoded, collate, encode_examples, pad_groups, stream_slice
from lab.finetune.model import (
    META_FILE,
    build_model,
    checkpoint_weights,
    count_params,
    load_checkpoint_weights,
    resolve_device,
)
from lab.io import write_json

log = logging.getLogger(__name__)

FINAL = "final"
KEEP_CHECKPOINTS = 2
MAX_GRAD_NORM = 1.0  # the usual clip for LM fine-tuning; guards the first steps of a high learning rate


# ------------------------------------------------------------------ process-group shim
class SingleProcess:
    """The collective operations of the loop for one process: all no-ops."""

    rank, world = 0, 1

    def all_sum(self, values: Sequence[float]) -> list[float]:
        return [float(v) for v in values]

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def barrier(self) -> None:
        pass

    def wrap(self, model: Any, method: str) -> Any:
        return model

    def no_sync(self, wrapped: Any) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


# ------------------------------------------------------------------ loss and schedule
#: model class -> whether its forward() takes a boolean ``logits_to_keep`` mask (see _loss_sum)
_MASK_OK: dict[type, bool] = {}


def _loss_sum(model: Any, batch: Mapping[str, Any]) -> Any:
    """Summed cross-entropy of the labelled (answer) tokens; the caller divides by the token count.

    Only the positions that predict a labelled token go through the vocabulary projection
    (``logits_to_keep`` as a boolean mask): with answers of a few tokens after prompts of hundreds,
    projecting every position onto the vocabulary (a quarter of the model's FLOPs for SmolLM2 and
    Qwen2.5-0.5B) and its log-softmax were mostly waste. Same sum as over all positions with
    ``ignore_index``, which is the path taken where the mask cannot be used: a forward() without
    ``logits_to_keep`` (TypeError), or a transformers release that reads a tensor only as positions
    (before 5.2x's ``slice_logits_to_keep``: IndexError or a result of another shape). The outcome
    is remembered per model class, so a model that cannot take the mask pays for the attempt once.
    """
    import torch
    import torch.nn.functional as F

    labels = batch["labels"]
    targets = labels[:, 1:]
    kind = type(model)
    if _MASK_OK.get(kind, True):
        keep = torch.zeros_like(labels, dtype=torch.bool)
        keep[:, :-1] = targets != -100      # position t predicts token t + 1
        try:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                           logits_to_keep=keep).logits
        except (TypeError, IndexError):
            _MASK_OK[kind] = False
        else:
            if logits.dim() == 2 and logits.shape[0] == int(keep.sum()):   # (labelled positions, vocab)
                _MASK_OK[kind] = True
                return F.cross_entropy(logits.float(), targets[targets != -100], reduction="sum")
            _MASK_OK[kind] = False
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                           reduction="sum")


def lr_factor(max_steps: int) -> Any:
    """Linear warm-up over ~10% of the steps (at least 1), then linear decay towards 0 at ``max_steps``.

    The factor of step ``s`` (0-based) never hits 0, so no optimizer step is wasted.
    """
    warmup = max(1, min(100, max_steps // 10))

    def factor(s: int) -> float:
        if s < warmup:
            return (s + 1) / (warmup + 1)
        return max(0.0, (max_steps - s) / max(1, max_steps - warmup))

    return factor


def _eval_loss(model: Any, data: Sequence[Encoded], batch_size: int, pad_id: int, device: str,
               dist: SingleProcess) -> float:
    import torch

    # by length: the loss is a sum, so the order is free, and similar lengths pad less
    mine = sorted(list(data)[dist.rank::dist.world], key=lambda e: len(e.input_ids))
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), batch_size):
            batch = {k: v.to(device) for k, v in collate(mine[i:i + batch_size], pad_id).items()}
            total += float(_loss_sum(model, batch))
            tokens += sum(e.n_answer for e in mine[i:i + batch_size])
    model.train()
    total, tokens = dist.all_sum([total, tokens])
    return total / tokens


# ------------------------------------------------------------------ RNG states (JSON-able for python/numpy)
def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    py = random.getstate()
    npy = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": [py[0], list(py[1]), py[2]],
            "numpy": [npy[0], npy[1].tolist(), int(npy[2]), int(npy[3]), float(npy[4])]}


def _set_rng_state(torch_part: Mapping[str, Any], py: Sequence[Any], npy: Sequence[Any]) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(torch_part["torch"])
    if torch_part.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(torch_part["cuda"])
    random.setstate((py[0], tuple(py[1]), py[2]))
    np.random.set_state((npy[0], np.asarray(npy[1], dtype=np.uint32), npy[2], npy[3], npy[4]))


# ------------------------------------------------------------------ the loop
def run_training(cfg: FinetuneConfig, model_path: Path, meta: Mapping[str, Any], train: Sequence[Mapping],
                 eval: Sequence[Mapping], out_dir: Path, *, resume: bool, progress: bool, t0: float,
                 dist: SingleProcess, device: str) -> dict[str, Any] | None:
    """Train (or continue) to ``cfg.max_steps``; rank 0 writes checkpoints and ``final/``.

    ``meta`` carries ``identity`` and ``base_model`` as the driver computed them. Returns the
    result dict on rank 0, None elsewhere.
    """
    import numpy as np
    import torch

    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)  # the same LoRA initialisation on every worker
        model, tok = build_model(cfg, model_path, device)
        torch.manual_seed(cfg.seed + dist.rank)  # dropout streams differ between workers
        train_enc, train_stats = encode_examples(train, tok, cfg.max_length, "train")
        eval_enc, eval_stats = encode_examples(eval, tok, cfg.max_length, "eval")
        trainable = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.max_steps))
        # train_s: seconds the earlier runs this one resumes spent (as of their last checkpoint)
        st: dict[str, Any] = {"step": 0, "examples_seen": 0, "tokens_seen": 0, "train_loss": [], "eval_loss": [],
                              "train_s": 0.0}
        resumed_from = None
        ck = latest_checkpoint(out_dir) if resume else None
        if ck:
            resumed_from, folder = ck
            saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
            weights = torch.load(folder / "model.pt", weights_only=True)
            load_checkpoint_weights(model, cfg.method, weights, folder)
            opt.load_state_dict(torch.load(folder / "optimizer.pt", map_location=device, weights_only=True))
            sched.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
            rngs = torch.load(folder / "rng.pt", weights_only=True)
            if dist.rank < len(rngs):
                _set_rng_state(rngs[dist.rank], saved["rng_python"][dist.rank], saved["rng_numpy"][dist.rank])
            else:
                warnings.warn(f"{folder} was written by {len(rngs)} worker(s); worker {dist.rank} starts a fresh "
                              "RNG stream (dropout masks differ from an uninterrupted run)", stacklevel=2)
            if "train_s" not in saved:
                warnings.warn(f"{folder} records no training time (written by an older lab): wall_s counts "
                              "only the time after this resume", stacklevel=2)
            st = {k: saved.get(k, st[k]) for k in st}
            if dist.rank == 0:
                log.info("resuming %s from %s", out_dir, folder)
                if progress:  # on the terminal (the stage's progress log), not in the report
                    print(f"finetune {cfg.method}: resuming from checkpoint step {resumed_from} of "
                          f"{cfg.max_steps} ({folder})", file=sys.stderr, flush=True)
        wrapped = dist.wrap(model, cfg.method)
        n_train, bs, accum = len(train_enc), cfg.batch_size, cfg.grad_accum
        do_eval = bool(eval_enc) and cfg.eval_every > 0
        if do_eval and st["step"] == 0 and not st["eval_loss"]:
            st["eval_loss"].append([0, _eval_loss(model, eval_enc, bs, tok.pad_token_id, device, dist)])

        resumed_s = float(st["train_s"])
        from lab.progress import bar as progress_bar

        # step/total, elapsed and rate from tqdm; the running loss as postfix
        bar = progress_bar(total=cfg.max_steps, initial=st["step"], desc=f"finetune {cfg.method}",
                           enable=progress and dist.rank == 0, unit="step")
        while st["step"] < cfg.max_steps:
            step = st["step"] + 1
            micro = [stream_slice(n_train, cfg.seed, st["examples_seen"] + m * bs, bs) for m in range(accum)]
            # Every answer token of the step (all micro-batches, all workers) weighs the same: divide each
            # micro-batch's summed loss by the step's token count. DDP averages gradients over workers,
            # hence the factor world.
            step_tokens = sum(train_enc[i].n_answer for idx in micro for i in idx)
            loss_sum, tokens = 0.0, 0
            for m, idx in enumerate(micro):
                # each micro-batch in groups of similar lengths (pad_groups: same sums, less padding)
                groups = pad_groups([train_enc[i] for i in idx[dist.rank::dist.world]])
                for g, group in enumerate(groups):
                    batch = {k: v.to(device) for k, v in collate(group, tok.pad_token_id).items()}
                    sync = m == accum - 1 and g == len(groups) - 1  # all-reduced once per optimizer step
                    with contextlib.nullcontext() if sync else dist.no_sync(wrapped):
                        s = _loss_sum(wrapped, batch)
                        (s * (dist.world / step_tokens)).backward()
                    loss_sum += float(s.detach())
                    tokens += int(batch["attention_mask"].sum())
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            loss_sum, tokens = dist.all_sum([loss_sum, tokens])
            st["step"], st["examples_seen"] = step, st["examples_seen"] + accum * bs
            st["tokens_seen"] += int(tokens)
            st["train_loss"].append([step, loss_sum / step_tokens])
            if do_eval and (step % cfg.eval_every == 0 or step == cfg.max_steps):
                st["eval_loss"].append([step, _eval_loss(model, eval_enc, bs, tok.pad_token_id, device, dist)])
            if cfg.save_every and step % cfg.save_every == 0:
                st["train_s"] = round(resumed_s + time.time() - t0, 3)
                _checkpoint(out_dir, cfg, meta, st, model, opt, sched, dist)
            bar.update(1)
            bar.set_postfix(loss=f"{st['train_loss'][-1][1]:.4f}")
        bar.close()

        rss = max(dist.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))  # Linux: KiB
        trainable_n, total_n = count_params(model, cfg.method)
        result = None
        if dist.rank == 0:
            final = out_dir / FINAL
            result = FinetuneResult(
                out_dir=out_dir, final_dir=final, method=cfg.method, steps=st["step"],
                resumed_from_step=resumed_from, train_loss=[tuple(p) for p in st["train_loss"]],
                eval_loss=[tuple(p) for p in st["eval_loss"]], wall_s=round(resumed_s + time.time() - t0, 3),
                resumed_s=resumed_s,
                peak_rss_mb=round(rss, 1), trainable_params=trainable_n, total_params=total_n,
                tokens_seen=st["tokens_seen"]).to_dict()
            data = {"train": vars(train_stats), "eval": vars(eval_stats)}
            _save_final(model, tok, cfg, meta, result, data, out_dir)
        dist.barrier()
        return result
    finally:
        torch.set_num_threads(threads_before)


def _checkpoint(out_dir: Path, cfg: FinetuneConfig, meta: Mapping[str, Any], st: Mapping[str, Any], model: Any,
                opt: Any, sched: Any, dist: SingleProcess) -> None:
    import torch

    rngs = dist.gather(_rng_state())  # every worker's streams, so each resumes its own
    if dist.rank == 0:
        def write(tmp: Path) -> None:
            torch.save(checkpoint_weights(model, cfg.method), tmp / "model.pt")
            torch.save(opt.state_dict(), tmp / "optimizer.pt")
            torch.save(sched.state_dict(), tmp / "scheduler.pt")
            torch.save([{"torch": r["torch"], "cuda": r["cuda"]} for r in rngs], tmp / "rng.pt")
            write_json(tmp / STATE_FILE, {
                **st, "identity": meta["identity"], "config": cfg.to_dict(), "world_size": dist.world,
                "rng_python": [r["python"] for r in rngs], "rng_numpy": [r["numpy"] for r in rngs]})

        write_checkpoint(out_dir, st["step"], write, keep=KEEP_CHECKPOINTS)
    dist.barrier()  # nobody runs ahead while rank 0 writes (and prunes)


def _save_final(model: Any, tok: Any, cfg: FinetuneConfig, meta: Mapping[str, Any], result: Mapping[str, Any],
                data: Mapping[str, Any], out_dir: Path) -> Path:
    from lab.models import _versions

    tmp = Path(tempfile.mkdtemp(prefix=".final-tmp-", dir=out_dir))
    try:
        model.save_pretrained(tmp)  # peft writes only the adapter (adapter_config.json + safetensors)
        tok.save_pretrained(tmp)
        write_json(tmp / META_FILE, {
            "kind": "model" if cfg.method == "full" else "adapter", "method": cfg.method,
            "base_model": meta["base_model"], "config": cfg.to_dict(), "identity": meta["identity"],
            "data": data, "result": result, "versions": _versions()})
        tmp.chmod(0o755)
        return replace_dir(tmp, out_dir / FINAL)
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ driver side (shared with Ray)
def prepare_run(cfg: FinetuneConfig, train: Sequence[Mapping], eval: Sequence[Mapping], out_dir: Path, *,
                resume: bool) -> tuple[dict[str, Any], FinetuneResult | None]:
    """Resolve the model, check ``out_dir`` against this run; returns ``(meta, reusable result or None)``.

    Call under :func:`out_dir_lock`. ``resume=False`` deletes earlier checkpoints and ``final/``.

    Raises
    ------
    DataError
        ``train`` is empty.
    LabError
        ``out_dir`` holds checkpoints or a final model of another config, model or data.
    """
    from lab.finetune.checkpoint import _remove_dir, checkpoints_dir
    from lab.models import resolve

    if not train:
        raise DataError("train: no examples to fine-tune on")
    ref = resolve(cfg.model)
    if ref.path is None or ref.task != "causal-lm":
        raise LabError(f"model {cfg.model!r} is not a local causal LM ({ref.kind}, {ref.task}); fine-tuning needs "
                       "weights on disk")
    ident = run_identity(cfg, ref.revision, train, eval)
    meta = {"identity": ident, "base_model": {"spec": cfg.model, "path": str(ref.path), "revision": ref.revision},
            "model_path": str(ref.path)}
    remove_partial(out_dir)
    final_meta = out_dir / FINAL / META_FILE
    if not resume:
        _remove_dir(checkpoints_dir(out_dir))
        _remove_dir(out_dir / FINAL)
        return meta, None
    how = "use another out_dir, or resume=False to start over (deletes them)"
    if final_meta.is_file():
        saved = json.loads(final_meta.read_text(encoding="utf-8"))
        diff = identity_diff(saved["identity"], ident)
        if diff:
            raise LabError(f"{out_dir / FINAL} holds a model fine-tuned with another config or data "
                           f"({'; '.join(diff)}); {how}")
        if saved["config"]["max_steps"] == cfg.max_steps:
            log.info("%s already holds this config's result: returned without training", out_dir / FINAL)
            return meta, FinetuneResult.from_dict(saved["result"], out_dir=out_dir, final_dir=out_dir / FINAL,
                                                  reused=True)
        # Only the length differs: train on from the newest checkpoint; final/ is replaced at the end.
    ck = latest_checkpoint(out_dir)
    if ck:
        saved = json.loads((ck[1] / STATE_FILE).read_text(encoding="utf-8"))
        diff = identity_diff(saved["identity"], ident)
        if diff:
            raise LabError(f"{ck[1]} is a checkpoint of another config or data ({'; '.join(diff)}); {how}")
        if ck[0] > cfg.max_steps:
            raise LabError(f"{ck[1]} is past max_steps={cfg.max_steps}; {how}")
        if saved["config"]["max_steps"] != cfg.max_steps:
            warnings.warn(f"resuming {ck[1]} (written for max_steps={saved['config']['max_steps']}) with "
                          f"max_steps={cfg.max_steps}: the learning-rate schedule's horizon moves", stacklevel=3)
    return meta, None


def finetune(train: Sequence[dict], eval: Sequence[dict], cfg: FinetuneConfig, out_dir: str | Path, *,
             resume: bool = True, progress: bool = True, log_to_mlflow: bool = False) -> FinetuneResult:
    """Fine-tune ``cfg.model`` on chat examples in this process; returns what it produced and cost.

    ``train``/``eval`` are ``{"messages": [...], "answer": "..."}`` dicts; the loss is on the answer
    tokens only. Checkpoints go to ``out_dir/checkpoints/step-<N>/`` every ``save_every`` steps
    (the last 2 kept), the model or adapter to ``out_dir/final/``.

    With ``resume=True`` (default) a run continues from the newest complete checkpoint, with the
    same data order and RNG streams, so its loss curve equals an uninterrupted run's; when
    ``final/`` already holds this config's result (same config, model and data), it is returned
    without training (``result.reused``). ``resume=False`` deletes earlier checkpoints and
    ``final/`` and starts over. Only ``max_steps`` changed: training goes on from the newest
    checkpoint (the LR schedule's horizon moves; a warning says so). ``log_to_mlflow`` logs params, loss curves, costs and ``final/``
    to the active MLflow run (a new ``finetune`` run when none is active).

    Raises
    ------
    ConfigError
        Bad config (also unknown ``target_modules``).
    DataError
        A malformed example (its index is named).
    LabError
        QLoRA without CUDA; ``out_dir`` holds another run's checkpoints or final model, or is in use.
    """
    t0 = time.time()
    if isinstance(cfg, Mapping):
        cfg = FinetuneConfig.from_dict(cfg)
    device = resolve_device(cfg)
    out_dir = Path(out_dir).resolve()
    with out_dir_lock(out_dir):
        meta, result = prepare_run(cfg, train, eval, out_dir, resume=resume)
        if result is None:
            d = run_training(cfg, Path(meta["model_path"]), meta, train, eval, out_dir, resume=resume,
                             progress=progress, t0=t0, dist=SingleProcess(), device=device)
            result = FinetuneResult.from_dict(d, wall_s=round(d["resumed_s"] + time.time() - t0, 3))  # type: ignore[index]
        elif progress:
            print(f"finetune: {result.final_dir} already holds this config's result; returned without training "
                  "(resume=False retrains)", file=sys.stderr, flush=True)
    if log_to_mlflow:
        log_result_to_mlflow(result, cfg)
    return result


def log_result_to_mlflow(result: FinetuneResult, cfg: FinetuneConfig) -> None:
    """Params, step-wise loss curves, cost metrics and ``final/`` (as artifact ``finetune_final``)."""
    import mlflow
    from mlflow.entities import Metric

    from lab import tracking

    def log(run_id: str) -> None:
        client = mlflow.MlflowClient()
        ts = int(time.time() * 1000)
        metrics = [Metric("train_loss", v, ts, s) for s, v in result.train_loss]
        metrics += [Metric("eval_loss", v, ts, s) for s, v in result.eval_loss]
        costs = {"wall_s": result.wall_s, "peak_rss_mb": result.peak_rss_mb, "trainable_params":
                 result.trainable_params, "total_params": result.total_params, "tokens_seen": result.tokens_seen,
                 "steps": result.steps}
        metrics += [Metric(f"finetune.{k}", float(v), ts, 0) for k, v in costs.items()]
        for i in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(run_id, metrics=metrics[i:i + 1000])
        client.set_tag(run_id, "finetune.reused", str(result.reused).lower())
        client.log_artifacts(run_id, str(result.final_dir), artifact_path="finetune_final")

    params = {"finetune": cfg.to_dict()}
    active = mlflow.active_run()
    if active is None:
        with tracking.stage_run("finetune", params=params) as run:
            log(run.info.run_id)
    else:
        flat = tracking.flatten(params)
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, list) else v) for k, v in flat.items()})
        log(active.info.run_id)
