"""MLflow runs with lineage: git commit, dirty flag, DVC data hash, params hash.

The default store is embedded: ``sqlite:///<project>/.mlflow/mlflow.db`` with artifacts beside it,
so a fresh clone tracks with no server. ``MLFLOW_TRACKING_URI`` switches to a server
(``http://127.0.0.1:5000``) or any other store. MLflow's telemetry is off (see :mod:`lab.env`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


from lab.config.loader import load_yaml
from lab.errors import ConfigError
from lab.paths import mlflow_dir, project_root

DEFAULT_EXPERIMENT = "lab"


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded sqlite store of the project."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    folder = mlflow_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, str]:
    """``git.commit`` (or ``none``) and ``git.dirty`` (``true``/``false``/``unknown``)."""
    root = project_root(root)
    commit = _git(root, "rev-parse", "HEAD")
    # untracked (not ignored) files count: a run importing an uncommitted module is not clean
    status = _git(root, "status", "--porcelain")
    dirty = "unknown" if status is None else ("true" if status else "false")
    return {"git.commit": commit or "none", "git.dirty": dirty}


def dvc_data_hashes(root: Path | None = None) -> dict[str, str]:
    """``dvc.data_hash.<path>`` -> md5 of every output recorded in the project's ``*.dvc`` files.

    The combined ``dvc.data_hash`` is the hash of the sorted pairs: one tag that changes whenever
    any tracked data changes.
    """
    root = project_root(root)
    pairs: dict[str, str] = {}
    for f in sorted(root.glob("*.dvc")):
        try:
            meta = load_yaml(f.read_text(encoding="utf-8"), f) or {}
        except (OSError, ConfigError):
            continue
        for out in meta.get("outs", []) or []:
            digest = out.get("md5") or out.get("etag") or out.get("hash")
            if out.get("path") and digest:
                pairs[str(out["path"])] = str(digest)
    tags = {f"dvc.data_hash.{k}": v for k, v in pairs.items()}
    if pairs:
        blob = json.dumps(sorted(pairs.items())).encode()
        tags["dvc.data_hash"] = hashlib.md5(blob).hexdigest()  # noqa: S324 - identity, not security
    else:
        tags["dvc.data_hash"] = "none"
    return tags


def lineage_tags(params_hash: str | None = None, root: Path | None = None) -> dict[str, str]:
    """All lineage tags of a run: git state, DVC data hashes, params hash, lab version."""
    from lab import __version__

    tags = {**git_state(root), **dvc_data_hashes(root), "lab.version": __version__}
    if params_hash:
        tags["params.hash"] = params_hash
    return tags


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists flattened to dotted keys (``corpora.0.path``) for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}.{i}."))
        else:
            out[name] = value
    return out


def setup(experiment: str = DEFAULT_EXPERIMENT, root: Path | None = None) -> Any:
    """Point MLflow at the project store and select ``experiment``; returns the mlflow module."""
    import mlflow

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(experiment) is None:
        # sqlite has no artifact root of its own: keep artifacts beside the database, not in ./mlruns
        artifacts = mlflow_dir(root) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        from mlflow.exceptions import MlflowException

        try:
            mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
        except MlflowException as exc:  # a concurrent creator may win the race; anything else is real
            if mlflow.get_experiment_by_name(experiment) is None:
                raise
            del exc
    mlflow.set_experiment(experiment)
    return mlflow


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any] | None = None,
    params_hash: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    root: Path | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> Iterator[Any]:
    """An MLflow run for one stage, tagged with lineage; yields the active run.

    The run ends FAILED when the body raises, and the exception propagates.
    """
    mlflow = setup(experiment, root)
    tags = {"lab.stage": stage, **lineage_tags(params_hash, root), **(extra_tags or {})}
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        if params:
            flat = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in flatten(params).items()}
            # MLflow caps a param value at 6000 characters; keep the log call from failing on long lists
            mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
        yield run


_BAD_METRIC_CHARS = {"@": "_at_"}


def metric_key(name: str) -> str:
    """An MLflow-safe metric name: ``hit_rate@5`` -> ``hit_rate_at_5`` (MLflow refuses ``@``)."""
    for bad, good in _BAD_METRIC_CHARS.items():
        name = name.replace(bad, good)
    return name


def log_metrics_file(path: Path) -> dict[str, float]:
    """Log every numeric leaf of a metrics JSON file to the active run; returns what was logged."""
    import mlflow

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    numeric = {
        metric_key(k): float(v)
        for k, v in flatten(data).items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    if numeric:
        mlflow.log_metrics(numeric)
    return numeric


#: Environment variable through which ``lab run`` hands its open run to the notebook's kernel.
PARENT_RUN_ENV = "LAB_PARENT_RUN_ID"


def child_run(name: str, params: Mapping[str, Any] | None = None, metrics: Mapping[str, float] | None = None,
              tags: Mapping[str, str] | None = None, artifacts: Mapping[str, Path] | None = None,
              experiment: str = DEFAULT_EXPERIMENT, root: Path | None = None) -> str | None:
    """Log one finished configuration as a child of the stage's run; returns the child's run id.

    The parent is the run ``lab run`` opened (``LAB_PARENT_RUN_ID``). Without one (the notebook
    run by hand) the child is logged as a top-level run tagged ``lab.parent=none``, so nothing is lost.
    """
    mlflow = setup(experiment, root)
    client = mlflow.MlflowClient()
    parent = os.environ.get(PARENT_RUN_ENV)
    exp = mlflow.get_experiment_by_name(experiment)
    all_tags = {**lineage_tags(root=root), **(tags or {}), "mlflow.runName": name}
    if parent:
        all_tags["mlflow.parentRunId"] = parent
    else:
        all_tags["lab.parent"] = "none"
    run = client.create_run(exp.experiment_id, tags=all_tags)
    rid = run.info.run_id
    try:
        from mlflow.entities import Metric, Param

        flat = {k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in flatten(params or {}).items()}
        ts = int(__import__("time").time() * 1000)
        client.log_batch(rid, metrics=[Metric(metric_key(k), float(v), ts, 0) for k, v in (metrics or {}).items()],
                         params=[Param(k, str(v)[:6000]) for k, v in flat.items()])
        for artifact_path, path in (artifacts or {}).items():
            if Path(path).is_dir():
                client.log_artifacts(rid, str(path), artifact_path=artifact_path)
            else:
                client.log_artifact(rid, str(path), artifact_path=artifact_path)
    except Exception:
        client.set_terminated(rid, status="FAILED")
        raise
    client.set_terminated(rid, status="FINISHED")
    return rid


# --------------------------------------------------------------------------- dataset inputs


def dvc_hash(path: str | Path) -> str:
    """The hash DVC gives ``path``: the md5 of a file's bytes, or for a folder DVC's ``<md5>.dir``
    over its files' relative paths and md5s (``dvc_data``'s tree digest), so a folder tracked by a
    ``.dvc`` file gets the very hash recorded there.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    path = Path(path)
    if path.is_file():
        return _md5_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such file or folder")
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        tree.add(f.relative_to(path).parts, Meta(size=f.stat().st_size), HashInfo("md5", _md5_file(f)))
    tree.digest()
    return str(tree.hash_info.value)


def _md5_file(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - DVC's content hash, an identity
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def log_dataset_inputs(paths: Mapping[str, Path], root: Path | None = None, context: str = "stage") -> list[dict]:
    """Log each path as an MLflow dataset input of the active run: name = the config key, source =
    the path (relative to the project), digest = its DVC hash (:func:`dvc_hash`). The runs table's
    Dataset column and the lineage view then show what a run read. Returns what was logged."""
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    root = project_root(root)
    logged = []
    for name, path in paths.items():
        path = Path(path)
        if not path.exists():
            continue
        rel = path.resolve().relative_to(root.resolve()).as_posix() if path.resolve().is_relative_to(root.resolve()) \
            else str(path)
        digest = dvc_hash(path)
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": it is a local path
            warnings.simplefilter("ignore")
            source = resolve_dataset_source(rel)
        ds = MetaDataset(source, name=f"{name}:{rel}", digest=digest[:36])
        mlflow.log_input(ds, context=context)
        logged.append({"name": name, "source": rel, "digest": digest})
    return logged
