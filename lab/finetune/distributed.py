"""Data-parallel fine-tuning on Ray Train: ``TorchTrainer`` workers running the same loop under DDP.

Every worker builds the same model, reads the same example stream and takes its share of each
micro-batch (``batch[rank::world]``); DDP all-reduces the gradients (gloo on CPU, NCCL on GPU).
The loss of a step is normalised by the step's answer tokens over *all* workers, so one step
with ``cfg.batch_size`` examples split over 2 workers computes the same gradient as
:func:`~lab.finetune.finetune` on one (up to float summation order). Rank 0 alone writes
checkpoints and ``final/``, in the same layout, so either function resumes the other's run.

``out_dir`` must be a folder every worker can read and rank 0 can write: a local disk for one
machine, shared storage for a cluster.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, LabError
from lab.finetune.checkpoint import out_dir_lock
from lab.finetune.config import FinetuneConfig, FinetuneResult
from lab.finetune.model import QLORA_ON_CPU
from lab.finetune.train import (
    FINAL,
    META_FILE,
    SingleProcess,
    log_result_to_mlflow,
    prepare_run,
    run_training,
)


class TorchDistributed(SingleProcess):
    """The loop's collectives over ``torch.distributed`` (the process group Ray Train set up)."""

    def __init__(self, rank: int, world: int, device: Any) -> None:
        self.rank, self.world, self.device = rank, world, device

    def all_sum(self, values: Sequence[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    def wrap(self, model: Any, method: str) -> Any:
        from ray.train.torch import prepare_model

        # A 4-bit model is already placed by its device_map and must not be moved.
        return prepare_model(model, move_to_device=method != "qlora")

    def no_sync(self, wrapped: Any) -> contextlib.AbstractContextManager:
        return wrapped.no_sync()


def _worker(config: Mapping[str, Any]) -> None:
    """Ray Train's ``train_loop_per_worker``: module-level so that it pickles by reference."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    dist = TorchDistributed(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    cfg = FinetuneConfig.from_dict(config["cfg"])
    meta = config["meta"]
    run_training(cfg, Path(meta["model_path"]), meta, config["train"], config["eval"], Path(config["out_dir"]),
                 resume=config["resume"], progress=False, t0=config["t0"], dist=dist, device=str(dist.device))


def finetune_ray(train: Sequence[dict], eval: Sequence[dict], cfg: FinetuneConfig, out_dir: str | Path, *,
                 num_workers: int = 2, use_gpu: bool = False, address: str | None = None, resume: bool = True,
                 log_to_mlflow: bool = False) -> FinetuneResult:
    """Fine-tune with Ray Train's ``TorchTrainer``: ``num_workers`` DDP workers, one GPU each if ``use_gpu``.

    Same config, outputs, resume rules and result as :func:`~lab.finetune.finetune`;
    ``cfg.batch_size`` is the micro-batch over all workers (each takes ``batch_size / num_workers``
    of it) and ``cfg.device`` is ignored (workers use what Ray gives them). Starts a local Ray with
    ``num_workers`` CPUs when none is running and ``address`` is None (and shuts it down after);
    ``address="auto"`` or ``"ray://host:10001"`` joins a cluster. ``peak_rss_mb`` is the largest
    worker's.

    Raises
    ------
    ConfigError
        ``batch_size`` smaller than ``num_workers`` (a worker would get no example).
    LabError
        QLoRA without ``use_gpu``; a worker failed (its error is quoted); see also :func:`finetune`.
    """
    t0 = time.time()
    if isinstance(cfg, Mapping):
        cfg = FinetuneConfig.from_dict(cfg)
    if cfg.method == "qlora" and not use_gpu:
        raise LabError(QLORA_ON_CPU + " With finetune_ray: use_gpu=True.")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise ConfigError(f"num_workers must be an integer >= 1, got {num_workers!r}")
    if cfg.batch_size < num_workers:
        raise ConfigError(f"batch_size={cfg.batch_size} is split over {num_workers} workers: each needs at least "
                          "one example per micro-batch; raise batch_size or lower num_workers")
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as exc:  # pragma: no cover - ray is a core dependency
        raise LabError("finetune_ray needs Ray Train: pip install 'ray[train]'") from exc

    out_dir = Path(out_dir).resolve()
    with out_dir_lock(out_dir):
        meta, result = prepare_run(cfg, train, eval, out_dir, resume=resume)
        if result is None:
            from lab.raycluster import ensure_ray

            started_here = ensure_ray(address, max(num_workers, 1))
            try:
                trainer = TorchTrainer(
                    _worker,
                    train_loop_config={"cfg": cfg.to_dict(), "meta": meta, "train": list(train), "eval": list(eval),
                                       "out_dir": str(out_dir), "resume": resume, "t0": t0},
                    scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
                    run_config=RunConfig(name=f"finetune-{int(t0)}", storage_path=str(out_dir / "ray")))
                try:
                    trainer.fit()
                except Exception as exc:  # Ray wraps the worker's exception; quote it
                    raise LabError(f"finetune_ray: training failed: {str(exc).strip()[-2000:]}") from exc
            finally:
                if started_here:
                    from lab.raycluster import shutdown

                    shutdown()  # bounded, as the sweep's
            saved = json.loads((out_dir / FINAL / META_FILE).read_text(encoding="utf-8"))
            for what, st in saved["data"].items():  # workers' warnings stay in Ray's logs: repeat them here
                if st["truncated"]:
                    warnings.warn(f"{what}: {st['truncated']} of {st['examples']} examples were longer than "
                                  f"max_length={cfg.max_length} and cut ({st['dropped']} dropped)", stacklevel=2)
            result = FinetuneResult.from_dict(saved["result"],
                                              wall_s=round(saved["result"].get("resumed_s", 0.0) + time.time() - t0, 3))
        else:
            print(f"finetune_ray: {result.final_dir} already holds this config's result; returned without "
                  "training (resume=False retrains)")
    if log_to_mlflow:
        log_result_to_mlflow(result, cfg)
    return result
