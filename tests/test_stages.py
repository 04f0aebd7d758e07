"""The one stage protocol: every params section has one registered run(cfg, paths) function, every
stage notebook is the same shell around it, and a stage writes where its out_dir says."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPO, require_data

from lab.config import SECTIONS
from lab.stage import STAGES, StagePaths, stage
from lab.stages import load_all, run_stage, shell_notebook


def test_every_section_has_one_stage_function_and_every_stage_a_section():
    assert set(load_all()) == set(SECTIONS.names())


@pytest.mark.parametrize("name", sorted(SECTIONS.names()))
def test_each_stage_notebook_is_the_shell(name):
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    want = shell_notebook(name, "".join(nb.cells[0].source))
    assert [c.source for c in nb.cells if c.cell_type == "code"] == \
        [c.source for c in want.cells if c.cell_type == "code"], f"rewrite notebooks/{name}.ipynb with shell_notebook"
    assert "parameters" in nb.cells[1].metadata.get("tags", [])


def test_a_stage_function_has_the_one_signature():
    with pytest.raises(TypeError, match=r"must have the signature \(cfg, paths"):
        @stage("not-a-stage")
        def bad(cfg, root, progress=True):   # noqa: ARG001
            return None
    assert "not-a-stage" not in STAGES._entries


def test_stage_paths_resolve_against_the_params_folder(tmp_path):
    class Cfg:
        out_dir = "out/x"

    paths = StagePaths.for_config(Cfg(), tmp_path)
    assert paths.out_dir == tmp_path / "out" / "x"
    assert paths.of("data/a.txt") == tmp_path / "data" / "a.txt" and paths.of("/abs") == Path("/abs")


def test_a_stage_writes_where_its_out_dir_says(tmp_path):
    data = require_data()
    shutil.copytree(data / "chroma_chunking" / "corpora", tmp_path / "corpora")
    params = {"data_quality": {"corpora": [{"name": "chroma", "path": "corpora", "glob": "*.md"}],
                               "max_docs_per_corpus": 2, "out_dir": "elsewhere/dq"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = run_stage("data_quality", tmp_path / "params.yaml")
    out = tmp_path / "elsewhere" / "dq"
    assert run.paths.out_dir == out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == run.result.metrics() and metrics["total.documents"] == 2
    assert (out / "plots" / "problems.png").is_file() and (out / "corpora.csv").is_file()
    assert not (tmp_path / "results").exists()
