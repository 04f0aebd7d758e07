"""Stage deps are derived from the import closure (lab.deps); dvc.yaml may not drift from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from lab import deps
from lab.cli import app
from lab.studies.retrieval import code_id

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_deps_equal_the_derived_ones():
    assert deps.drift(REPO) == {}, "dvc.yaml deps drifted: run `lab dvc-deps --write`"


def test_derived_deps_hold_what_the_review_found_missing():
    d = deps.derived(REPO)
    for stage in ("retrieval_sweep", "finetune_comparison"):
        assert "lab/index.py" in d[stage] and "lab/tokens.py" in d[stage] and "lab/registry.py" in d[stage]
    assert "lab/raycluster.py" in d["retrieval_sweep"]
    assert "lab/data/corpus.py" in d["retrieval_sweep"]
    for stage, listed in d.items():
        assert "lab/runner.py" in listed and "lab/tracking.py" in listed, stage
        assert listed[0] == f"notebooks/{stage}.ipynb"
    # another stage's output through its out_dir, as that stage's outs are written (DVC resolves both)
    assert "${retrieval_sweep.out_dir}/winner.json" in d["finetune_comparison"]
    assert "experiments/retrieval_sweep.yaml" in d["retrieval_sweep"]
    assert "data/squad_v1.1_dev/dev-v1.1.qa.jsonl" in d["retrieval_sweep"]  # the experiment's dataset


def _copy_project(tmp_path: Path) -> Path:
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in ("notebooks", "experiments"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "lab").symlink_to(REPO / "lab")   # the project's stages run this lab: its sources are deps
    return tmp_path


def test_a_removed_dependency_is_drift_and_write_restores_it(tmp_path, monkeypatch):
    root = _copy_project(tmp_path)
    text = (root / "dvc.yaml").read_text()
    assert "      - lab/index.py\n" in text
    (root / "dvc.yaml").write_text(text.replace("      - lab/index.py\n", "", 1))
    found = deps.drift(root)
    assert found and any("lab/index.py" in diff["missing"] for diff in found.values())
    monkeypatch.chdir(root)
    res = CliRunner().invoke(app, ["dvc-deps"])
    assert res.exit_code == 1 and "lab/index.py" in res.output
    res = CliRunner().invoke(app, ["dvc-deps", "--write"])
    assert res.exit_code == 0, res.output
    assert (root / "dvc.yaml").read_text() == text  # comments and every other key kept
    assert deps.drift(root) == {}
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert stages["finetune_comparison"]["outs"]  # untouched


def test_sweep_code_identity_is_the_closure(tmp_path):
    from lab.imports import closure

    files = {p.name for p in closure(["lab.studies.retrieval"])}
    assert {"corpus.py", "index.py", "ir.py", "sets.py", "bm25.py"} <= files
    assert len(code_id()) == 12 and code_id() == code_id()


def test_every_resumable_output_is_uncached_and_git_ignored():
    """`dvc exp run` checks cached outputs out to dvc.lock's state before it runs, which deletes what a
    killed run left to resume from (checkpoints, finished trials); uncached outputs it leaves alone
    (checked by hand on dvc 3.67: an extra file in a persist+cache output was gone after the next
    `dvc exp run`, kept with cache: false). So every persist output is cache: false, and git-ignored
    so its checkpoints and models stay out of git."""
    import subprocess

    from lab.config import read_params
    from lab.config.base import interpolate

    # the outputs as DVC resolves them (${stage.out_dir}/... from params.yaml)
    stages = interpolate(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"],
                         read_params(REPO / "params.yaml"), "dvc.yaml")
    persist = []
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            if isinstance(out, dict):
                (path, opts), = out.items()
                if opts.get("persist"):
                    persist.append(path)
                    assert opts.get("cache") is False, f"{name}: {path} is persist but cached"
    assert "results/finetune_comparison/arms" in persist and len(persist) >= 4
    res = subprocess.run(["git", "check-ignore", "--no-index", *[f"{p}/x" for p in persist]], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert sorted(res.stdout.split()) == sorted(f"{p}/x" for p in persist), res.stdout


def test_every_stage_notebook_has_cell_ids():
    """nbformat 4.5 cell ids: without them nbformat warns (MissingIDFieldWarning) in every
    `dvc repro` and will refuse the notebook in a future version."""
    import json

    for nb_path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb_path.read_text())["cells"]
        missing = [i for i, c in enumerate(cells) if "id" not in c]
        assert not missing, f"{nb_path}: cells {missing} have no id (fix: nbformat.validator.normalize)"
