"""Sweeps on Ray Tune over any study function, resumable, with search spaces in ``experiments/*.yaml``.

An experiment file (format documented in ``experiments/README.md``)::

    version: 1
    name: retrieval-hit-rate
    study: retrieval                # which trial function evaluates a configuration
    dataset: {kind: ..., ...}       # lab.config.datasets: a typed model per kind
    search:
      mode: grid                    # grid | random
      num_samples: 10               # random only
      seed: 0
      space:                        # every key a list of values
        chunker: [recursive, token]
        size: [128, 256]
    fixed: {ks: [1, 5, 10]}         # merged into every configuration

Resumability does not rely on Ray's experiment state: every finished trial writes its result
atomically to ``<out_dir>/trials/<trial id>.json`` (the id is a hash of the configuration) from
inside the worker. A rerun, after a crash or ``kill -9``, skips every configuration that has a
result and runs only the rest, so finished trials are never recomputed and none is lost.

Each result records where it ran (``placement``: the host and process, and on Ray the node's id,
IP and name), so a sweep on a cluster shows how its trials spread over the nodes
(:func:`placement_counts`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from lab.config import RetrievalDatasetSpec, StrictModel, format_validation, load_yaml
from lab.errors import ConfigError, LabError
from lab.io import write_json

TrialFn = Callable[[dict[str, Any]], dict[str, float]]


class SearchSpec(StrictModel):
    mode: Literal["grid", "random"] = "grid"
    num_samples: int = Field(10, ge=1)
    seed: int = 0
    space: dict[str, list[Any]] = Field(min_length=1)


class Experiment(StrictModel):
    """An ``experiments/*.yaml`` file, validated."""

    version: Literal[1] = 1
    name: str = Field(min_length=1)
    study: str = Field(min_length=1)
    dataset: RetrievalDatasetSpec | None = None
    search: SearchSpec
    fixed: dict[str, Any] = {}


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; errors name the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: experiment file not found")
    raw = load_yaml(p.read_text(encoding="utf-8"), p)
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation(exc, "", Experiment, str(p))) from None
    empty = [k for k, v in exp.search.space.items() if not v]
    if empty:
        raise ConfigError(f"{p}: search.space.{empty[0]}: needs at least one value")
    clash = sorted(set(exp.search.space) & set(exp.fixed))
    if clash:
        raise ConfigError(f"{p}: keys both searched and fixed: {clash}")
    return exp


def expand(exp: Experiment) -> list[dict[str, Any]]:
    """The configurations of an experiment: the full grid, or ``num_samples`` distinct random draws."""
    keys = list(exp.search.space)
    grid = [dict(zip(keys, values, strict=True)) for values in itertools.product(*exp.search.space.values())]
    if exp.search.mode == "random":
        rng = random.Random(exp.search.seed)
        grid = rng.sample(grid, min(exp.search.num_samples, len(grid)))
    return [{**cfg, **exp.fixed} for cfg in grid]


def trial_id(config: dict[str, Any]) -> str:
    """16 hex digits identifying a configuration (canonical JSON hash): the key of its result file."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ResultStore:
    """One JSON file per finished trial, written atomically: the sweep's durable state."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir) / "trials"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, tid: str) -> Path:
        return self.dir / f"{tid}.json"

    def has(self, config: dict[str, Any]) -> bool:
        return self.path(trial_id(config)).is_file()

    def write(self, config: dict[str, Any], metrics: dict[str, Any], **extra: Any) -> Path:
        tid = trial_id(config)
        record = {"trial_id": tid, "config": config, "metrics": metrics, "finished_at": time.time(), **extra}
        return write_json(self.path(tid), record, indent=1, end="", fsync=True)

    def update(self, tid: str, **fields: Any) -> None:
        record = json.loads(self.path(tid).read_text(encoding="utf-8"))
        record.update(fields)
        self.write(record.pop("config"), record.pop("metrics"), **{k: v for k, v in record.items()
                                                                   if k not in ("trial_id",)})

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.dir.glob("*.json"))]


def placement() -> dict[str, Any]:
    """Where this process runs: ``host`` and ``pid``; inside a Ray worker also ``node_id``,
    ``node_ip`` and ``node_name`` (the name given with ``ray start --node-name``, else its IP).

    Never raises: what cannot be found out is left out (a trial must not fail over its record)."""
    out: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")   # imported in every Ray worker; never imported here for a local run
    if ray is None:
        return out
    try:
        if not ray.is_initialized():
            return out
        node_id = ray.get_runtime_context().get_node_id()
        out["node_id"] = node_id
        for node in ray.nodes():
            if node.get("NodeID") == node_id:
                out["node_ip"] = node.get("NodeManagerAddress")
                out["node_name"] = node.get("NodeName")
                break
    except Exception:  # noqa: BLE001, S110 - a record without the node is better than a failed trial
        pass
    return out


def placement_counts(results: list[dict[str, Any]]) -> dict[str, int]:
    """Trials per node (``node_name``, else ``node_id``, else ``host``) of results that record it."""
    counts: dict[str, int] = {}
    for r in results:
        where = r.get("placement") or {}
        key = where.get("node_name") or where.get("node_id") or where.get("host")
        if key:
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _run_and_store(config: dict[str, Any], trial_fn: TrialFn, out_dir: str) -> dict[str, Any]:
    """Inside a worker: evaluate, then persist the result (with where it ran) before reporting it."""
    t0 = time.time()
    metrics = trial_fn(config)
    metrics = {**metrics, "trial_wall_s": round(time.time() - t0, 3)}
    ResultStore(out_dir).write(config, metrics, worker_pid=os.getpid(), placement=placement())
    return metrics


def _show_trial(shown: Any, metrics: dict[str, Any], metric: str, mode: str) -> None:
    """One more finished trial on the bar, with the running best of ``metric``."""
    value = metrics.get(metric)
    if isinstance(value, int | float):
        prev = getattr(shown, "lab_best", None)
        if prev is None or (value > prev if mode == "max" else value < prev):
            shown.lab_best = value
    shown.update(1)
    if getattr(shown, "lab_best", None) is not None:
        shown.set_postfix_str(f"best {metric} {shown.lab_best:.4f}")


@dataclass
class SweepRun:
    """What :func:`run_sweep` did."""

    results: list[dict[str, Any]]
    ran: int
    skipped: int
    wall_s: float


def run_sweep(
    trial_fn: TrialFn,
    configs: list[dict[str, Any]],
    out_dir: str | Path,
    *,
    metric: str,
    mode: Literal["max", "min"],
    backend: Literal["ray", "local"] = "ray",
    num_cpus: int | None = None,
    cpus_per_trial: float = 1.0,
    memory_per_trial_gb: float | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    progress: bool = True,
    node_failure_retries: int = 1,
) -> SweepRun:
    """Run every configuration without a stored result; return all results (old and new), in
    :func:`config_order`.

    ``backend="ray"`` runs the pending trials as a Ray Tune experiment (``address``: ``None`` starts
    a local Ray with ``num_cpus``; ``"auto"`` or ``"ray://host:10001"`` joins a cluster).
    ``backend="local"`` runs them in this process, one after another (no Ray start-up cost).
    A Ray trial that fails because its worker process or node went away (a node of a cluster
    stopped or lost, a crashed worker; not an exception of ``trial_fn``) is run again on the nodes
    left, up to ``node_failure_retries`` times; finished trials are never run again.
    ``trial_fn`` must be picklable (a module-level function or a ``functools.partial`` of one).
    """
    t0 = time.time()
    store = ResultStore(out_dir)
    pending = [c for c in configs if not store.has(c)]
    skipped = len(configs) - len(pending)
    if pending and backend == "local":
        from lab.progress import bar

        with bar(total=len(pending), desc=f"trials ({skipped} resumed)" if skipped else "trials",
                 enable=progress, unit="trial") as shown:
            for cfg in pending:
                _show_trial(shown, _run_and_store(cfg, trial_fn, str(out_dir)), metric, mode)
    elif pending:
        _run_ray(trial_fn, pending, Path(out_dir), metric=metric, mode=mode, num_cpus=num_cpus,
                 cpus_per_trial=cpus_per_trial, memory_per_trial_gb=memory_per_trial_gb, address=address,
                 max_concurrent=max_concurrent, progress=progress, resumed=skipped,
                 node_failure_retries=node_failure_retries)
    wanted = {trial_id(c) for c in configs}
    results = sorted((r for r in store.all() if r["trial_id"] in wanted), key=config_order)
    missing = wanted - {r["trial_id"] for r in results}
    if missing:
        raise LabError(f"{len(missing)} trial(s) finished without a result in {store.dir} "
                       "(see the Ray logs above); rerun to retry only those")
    return SweepRun(results=results, ran=len(pending), skipped=skipped, wall_s=round(time.time() - t0, 2))


#: Ray errors of a trial that lost its worker process or node (not an exception of the trial's own
#: code, which arrives as ``RayTaskError``): such a trial is run again (``node_failure_retries``).
_LOST_WORKER_ERRORS = ("RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError",
                       "WorkerCrashedError", "LocalRayletDiedError", "OwnerDiedError")


def _lost_worker(error: BaseException) -> bool:
    """True when ``error`` (or an exception it wraps) says the trial's worker or node went away."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if any(c.__name__ in _LOST_WORKER_ERRORS for c in type(error).__mro__):
            return True
        error = error.__cause__ or error.__context__
    return False


def _run_ray(trial_fn: TrialFn, pending: list[dict[str, Any]], out_dir: Path, *, metric: str, mode: str,
             num_cpus: int | None, cpus_per_trial: float, memory_per_trial_gb: float | None,
             address: str | None, max_concurrent: int | None, progress: bool = True, resumed: int = 0,
             node_failure_retries: int = 1) -> None:
    try:
        from ray import tune
        from ray.tune import Callback
    except ImportError as exc:  # pragma: no cover - ray is a core dependency
        raise LabError("Ray Tune is not installed: pip install 'ray[tune]'") from exc

    from lab.raycluster import ensure_ray

    # Ctrl-C must reach this driver as KeyboardInterrupt: Ray Tune's own SIGINT handler would
    # instead end the experiment "gracefully" and return, leaving a sweep that looks finished
    # but is not. Finished trials are on disk already (ResultStore); the rerun resumes from them.
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    started_here = ensure_ray(address, num_cpus)
    try:
        resources: dict[str, float] = {"cpu": cpus_per_trial}
        if memory_per_trial_gb:
            resources["memory"] = memory_per_trial_gb * 1024**3

        def trainable(config: dict[str, Any]) -> dict[str, Any]:
            return _run_and_store(config["cfg"], trial_fn, str(out_dir))

        from lab.progress import bar

        shown = bar(total=len(pending), desc=f"trials ({resumed} resumed)" if resumed else "trials",
                    enable=progress, unit="trial")

        class _Progress(Callback):
            """Trials done/total and the running best, in the driver (Ray Tune's own console
            reporter is off: its tables would land in the notebook)."""

            def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                _show_trial(shown, trial.last_result or {}, metric, mode)

            def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
                shown.write(f"trial failed: {trial.config.get('cfg')}")

        store, name = ResultStore(out_dir), f"sweep-{int(time.time())}"
        try:
            for attempt in range(node_failure_retries + 1):
                # a trial whose worker died after writing its result is done: only the rest run again
                todo = [c for c in pending if not store.has(c)]
                if not todo:
                    break
                tuner = tune.Tuner(
                    tune.with_resources(trainable, resources),
                    param_space={"cfg": tune.grid_search(todo)},
                    tune_config=tune.TuneConfig(metric=metric, mode=mode, max_concurrent_trials=max_concurrent,
                                                reuse_actors=True),  # workers keep loaded models
                    run_config=tune.RunConfig(name=name if attempt == 0 else f"{name}-retry{attempt}",
                                              storage_path=str((out_dir / "ray").resolve()), verbose=0,
                                              callbacks=[_Progress()],
                                              failure_config=tune.FailureConfig(max_failures=0)),
                )
                grid = tuner.fit()
                if not grid.errors:
                    break
                lost = [e for e in grid.errors if _lost_worker(e)]
                if len(lost) < len(grid.errors) or attempt == node_failure_retries:
                    # surface the first worker error instead of Ray's log lines only
                    first = next((e for e in grid.errors if not _lost_worker(e)), grid.errors[0])
                    raise LabError(f"{len(grid.errors)} of {len(todo)} trial(s) failed; first error: "
                                   f"{str(first).strip()[-1500:]}\nFinished trials are kept; rerun to retry "
                                   "only the failed ones")
                shown.write(f"{len(lost)} trial(s) lost their Ray worker or node ({type(lost[0]).__name__}); "
                            "running them again on the nodes left")
        finally:
            shown.close()
    finally:
        if started_here:
            from lab.raycluster import shutdown

            shutdown()  # bounded: after a Ctrl-C Ray's own processes may already be gone


def config_order(result: dict[str, Any]) -> str:
    """Sort key of a result: its configuration as canonical JSON (stable across code changes)."""
    return json.dumps(result["config"], sort_keys=True, default=str)


def best(results: list[dict[str, Any]], metric: str, mode: Literal["max", "min"]) -> dict[str, Any]:
    """The result with the best ``metric``; ties go to the first in :func:`config_order`.

    Not trial-id order: a trial id hashes the code identity too, so a code change would pick
    another of two tied configurations."""
    if not results:
        raise LabError("no results to choose a winner from")
    missing = [r["trial_id"] for r in results if metric not in r["metrics"]]
    if missing:
        raise LabError(f"metric {metric!r} is missing from trial(s) {missing[:3]}; "
                       f"available: {sorted(results[0]['metrics'])}")
    ordered = sorted(results, key=config_order)
    pick = max if mode == "max" else min
    return pick(ordered, key=lambda r: r["metrics"][metric])
