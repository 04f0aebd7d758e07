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


def resolve_path(path: str | Path, root: Path) -> Path:
    """``path`` itself when absolute, else ``root / path``.

    ``root`` is the folder of ``params.yaml``: every relative path in the params, a bundle or a
    sweep configuration means "relative to the project", never "relative to the cwd".
    """
    p = Path(path)
    return p if p.is_absolute() else root / p
