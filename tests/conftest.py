"""Shared fixtures. Tests run offline, with a session-wide throw-away lab cache; MLflow per test on request."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# A throw-away lab cache (models, embedding store) for the whole session, inherited by the
# subprocesses of the end-to-end test: tests never read or fill the user's ~/.cache/lab.
os.environ["LAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="lab-test-cache-")


@pytest.fixture()
def isolated_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty embedded MLflow store for one test."""
    folder = tmp_path / "mlflow-store"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LAB_MLFLOW_DIR", str(folder))
    return folder


def require_data() -> Path:
    """The demo data folder; restored by `dvc pull` in scripts/setup.sh. Fails loudly when absent."""
    if not (DATA / "chroma_chunking").is_dir():
        pytest.fail("data/ is missing: run `bash scripts/setup.sh` (it runs `dvc pull`) before the tests")
    return DATA


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst


def load_script(rel: str) -> ModuleType:
    """A script of the repository that is not a package module (``benchmarks/x.py``, ``scripts/x.py``,
    ``docs/hooks.py``), imported from its path relative to the repository root."""
    path = REPO / rel
    # registered under a name no package uses, before it runs: dataclasses and pickling look their
    # module up in sys.modules, and a script named like a library module must not shadow it
    name = "_lab_script_" + rel.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def fake_judge_model(judge_eval: Path, name: str, threshold: float, task: str = "grounded") -> Path:
    """A trained judge's folder as the judge stage leaves it (``models/<name>``: ``model/`` and
    ``meta.json``), with no weights: for code that only reads where the model is and its threshold."""
    import json

    folder = judge_eval / "models" / name
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    (folder / "meta.json").write_text(json.dumps({"name": name, "task": task, "threshold": threshold}))
    return folder
