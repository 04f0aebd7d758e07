"""The MLflow model registry: a bundle registered as a new model version, the promotion gate's
result recorded on it, and the ``champion`` alias moved only when the gate passed.

The version number counts registrations in *this machine's* MLflow store, so it is never written
to a git-tracked file: the export stage tags the version with the bundle's ``bundle_id`` and
:func:`version_of_bundle` finds it again (the promotion gate does, when no version is given).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.export.winner import ExportError

#: The alias the promotion gate moves (``models:/NAME@champion`` is what production serves).
CHAMPION = "champion"


def register(bundle_dir: str | Path, name: str, *, tags: Mapping[str, str] | None = None,
             root: Path | None = None) -> str:
    """Log the bundle folder as artifacts of an MLflow run and register it as a new version of the
    registered model ``name``; returns the version. The ``champion`` alias is NOT moved here: only
    the promotion gate moves it (:func:`promote`)."""
    import mlflow

    from lab import tracking

    tracking.setup(root=root)
    client = mlflow.MlflowClient()
    _ensure_registered_model(client, name)
    # a child of the stage's run (a top-level run tagged lab.parent=none outside a stage)
    run_id = tracking.child_run(f"export {name}", tags={"lab.kind": "export", **dict(tags or {})},
                                artifacts={"bundle": Path(bundle_dir)}, root=root)
    source = f"{client.get_run(run_id).info.artifact_uri}/bundle"
    mv = client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags or {}))
    return str(mv.version)


def _ensure_registered_model(client: Any, name: str) -> None:
    """Create registered model ``name`` unless it exists. Two stages registering at once may both
    find it missing: the loser of the create race gets RESOURCE_ALREADY_EXISTS and goes on (the
    store numbers the versions, retrying on a clash, so each registration gets its own version)."""
    import mlflow

    try:
        client.get_registered_model(name)
        return
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        client.create_registered_model(name, description="lab serving bundles (lab.export)")
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def version_of_bundle(name: str, bundle_id: str, *, root: Path | None = None) -> str:
    """The newest version of registered model ``name`` tagged with ``bundle_id``.

    Raises
    ------
    ExportError
        No version of ``name`` carries that bundle id in this MLflow store (the bundle was not
        registered here); the message says how to register it or name a version.
    """
    import mlflow

    from lab import tracking

    tracking.setup(root=root)
    client = mlflow.MlflowClient()
    try:
        found = client.search_model_versions(f"name = '{name}' and tags.bundle_id = '{bundle_id}'")
    except mlflow.exceptions.MlflowException as exc:
        raise ExportError(f"model registry: cannot search {name!r} ({exc.message.splitlines()[0]})") from None
    if not found:
        raise ExportError(f"no version of registered model {name!r} holds bundle {bundle_id!r} in this MLflow store; "
                          "register it with `dvc repro export` (export.register_model: true) or pass --version")
    return str(max(int(v.version) for v in found))


def promote(name: str, version: str, gate: Mapping[str, Any], *, alias: str = CHAMPION,
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
