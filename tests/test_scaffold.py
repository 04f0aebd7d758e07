"""`lab init`: the project it writes, and what it refuses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, load_script
from typer.testing import CliRunner

from lab.cli import app
from lab.scaffold import STAGES, TEMPLATE, InitError, init_project


def _template_script():
    return load_script("scripts/project_template_dvc.py")


def test_the_project_template_has_lab_s_own_stages():
    # the template's stages are lab's dvc.yaml stages (deps aside): regenerate with the script
    assert (TEMPLATE / "dvc.yaml").read_text(encoding="utf-8") == _template_script().render(), \
        "run `python scripts/project_template_dvc.py`"
    assert list(yaml.safe_load((TEMPLATE / "dvc.yaml").read_text())["stages"]) == list(STAGES)


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "Team docs (2026)"
    (docs / "guides").mkdir(parents=True)
    (docs / "guides" / "Überblick – security.md").write_text("# Overview\n\nThe plan is reviewed yearly.\n",
                                                             encoding="utf-8")
    (docs / "notes.txt").write_text("Access is granted by the authorizing official.\n", encoding="utf-8")
    (docs / "guides" / "loop").symlink_to(docs, target_is_directory=True)   # a symlink loop
    for p in (docs / "guides", docs):
        p.chmod(stat.S_IRUSR | stat.S_IXUSR)   # read-only source folders
    return docs


def _writable(docs: Path) -> None:
    for p in (docs, docs / "guides"):
        p.chmod(stat.S_IRWXU)


def test_the_template_s_dvc_yaml_is_not_a_pipeline_of_this_repository():
    """DVC collects every dvc.yaml in a repository: the template's would make `dvc status` of this
    checkout list nine phantom stages with deleted outputs. .dvcignore keeps it out."""
    from dvc.repo import Repo

    assert (TEMPLATE / "dvc.yaml").is_file()
    with Repo(str(REPO)) as repo:
        files = {Path(s.path).resolve().relative_to(REPO).as_posix() for s in repo.index.stages}
    assert files <= {"dvc.yaml", "data.dvc"}, files


def test_init_writes_a_project_for_the_documents(tmp_path):
    docs = _docs(tmp_path)
    questions = tmp_path / "our questions.csv"
    questions.write_text("question,answer,source\nWho grants access?,the authorizing official,notes.txt\n")
    try:
        report = init_project(tmp_path / "proj ü", docs, questions, git=False, n_questions=12)
    finally:
        _writable(docs)
    root = tmp_path / "proj ü"
    assert report.root == root and report.documents == 2
    assert any("loop" in s for s in report.skipped)          # the symlinked folder was not followed
    assert (root / "data" / "docs" / "guides" / "Überblick – security.md").is_file()
    assert (root / "data" / "questions.csv").read_text().startswith("question,answer")
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["ingest"]["sources"] == ["data/docs"] and params["testset"]["n"] == 12
    assert params["testset"]["questions"] == "data/questions.csv"
    assert list(yaml.safe_load((root / "dvc.yaml").read_text())["stages"]) == list(STAGES)
    for stage in STAGES:
        assert (root / "notebooks" / f"{stage}.ipynb").is_file()
    deps = [d for s in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].values() for d in s["deps"]]
    assert "data/docs" in deps and not any(d.startswith(("lab/", "/")) or "/lab/" in d for d in deps)
    # one line says how the deps are made, and it is the project's (no lab modules among them)
    header = [x for x in (root / "dvc.yaml").read_text().splitlines() if x.startswith("# `deps` are derived")]
    assert header == ["# `deps` are derived (lab dvc-deps --write): the notebook and the data its section names."]
    assert "${ingest.out_dir}/docs" in yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["testset"]["deps"]
    assert (root / "data" / "reference" / "halueval" / "qa_train.jsonl").is_file()
    # an empty review beside the test set, so a reviewer's decisions rerun what reads the test set
    review = root / "results" / "testset" / "testset.review.json"
    assert json.loads(review.read_text()) == {"format": "lab.testset-review", "version": 1, "testset_sha256": "",
                                              "decisions": []}
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    readers = sorted(name for name, st in stages.items() if "${testset.out_dir}/testset.review.json" in st["deps"])
    assert readers == ["chunking_study", "finetune_comparison", "judge_eval", "retrieval_sweep"], readers
    assert not list(tmp_path.glob(".*lab-init"))                   # built aside, then renamed into place
    # the sections validate as every stage will read them
    res = CliRunner().invoke(app, ["params", "check", "--params", str(root / "params.yaml")])
    assert res.exit_code == 0, res.output


def test_init_refuses_a_non_empty_folder_and_missing_inputs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InitError, match="exists and is not an empty folder"):
        init_project(busy, docs, git=False)
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(InitError, match="--docs .*no such file or folder"):
        init_project(tmp_path / "p", tmp_path / "nope", git=False)
    with pytest.raises(InitError, match="--questions .*no such file"):
        init_project(tmp_path / "p", docs, tmp_path / "q.csv", git=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InitError, match="no files found"):
        init_project(tmp_path / "p", tmp_path / "empty", git=False)
    assert not (tmp_path / "p").exists() and not list(tmp_path.glob(".*lab-init"))


def test_init_with_git_commits_the_project_with_the_documents_in_dvc(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nText.\n")
    root = tmp_path / "proj"
    env = {**os.environ, "HOME": str(tmp_path)}   # no git identity configured: lab init supplies one
    res = subprocess.run(["lab", "init", str(root), "--docs", str(docs)], capture_output=True, text=True, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "next: cd" in res.stdout
    assert (root / "data" / "docs.dvc").is_file() and (root / ".dvc" / "config").is_file()
    log = subprocess.run(["git", "log", "--oneline"], cwd=root, capture_output=True, text=True).stdout
    assert "lab init" in log
    status = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    assert status == ""
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=root, capture_output=True, text=True).stdout.split()
    assert tracked == ["results/testset/testset.review.json"]   # the reviewer's decisions are in git
