"""Where things live: the project root and the embedded stores inside it."""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``dvc.yaml`` or ``.git``.

    Falls back to ``start`` itself, so library calls outside a project still work.
    """
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists() or (folder / ".git").exists():
            return folder
    return here


def mlflow_dir(root: Path | None = None) -> Path:
    """The embedded MLflow store (sqlite + artifacts): ``<root>/.mlflow``, ignored by git."""
    return Path(os.environ.get("LAB_MLFLOW_DIR") or (project_root(root) / ".mlflow"))
