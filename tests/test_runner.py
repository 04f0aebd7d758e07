"""lab.runner: progress and noise go to the terminal and the stage log, not into the report; only
the metrics this run wrote are logged; the HTML report hides code."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from lab.runner import run_notebook

NOISY = '''import sys, warnings
from lab.progress import bar
for _ in bar(range(3), desc="work items"):
    pass
print("to stderr", file=sys.stderr)
warnings.warn("a library warning")
os_fd = __import__("os").write(2, b"fd-level noise\\n")
print("kept in the report")
'''


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("out = ''\nwrite_metrics = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), params, nbformat.v4.new_code_cell(body),
                nbformat.v4.new_code_cell(
                    "if write_metrics:\n    from lab.io import write_json\n"
                    "    write_json(__import__('pathlib').Path(out) / 'metrics.json', {'score': 0.5})")]
    nbformat.write(nb, str(path))
    return path


def test_stderr_goes_to_the_log_and_terminal_not_the_notebook(tmp_path, capfd):
    nb = _notebook(tmp_path / "noisy.ipynb", NOISY)
    (tmp_path / "params.yaml").write_text("{}\n")
    res = run_notebook(nb, {"out": str(tmp_path / "out")}, params_file=tmp_path / "params.yaml",
                       out_dir=tmp_path / "out", track=False)
    executed = json.loads(res.notebook.read_text())
    outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
    assert [o for o in outputs if o.get("name") == "stderr"] == []
    assert any("kept in the report" in "".join(o.get("text", "")) for o in outputs)
    log = res.log.read_text()
    for text in ("to stderr", "a library warning", "fd-level noise", "work items"):
        assert text in log, text
    err = capfd.readouterr().err
    assert "to stderr" in err and "work items" in err  # echoed to the terminal while it ran
    assert "without encryption" not in err
    html = res.html.read_text()
    assert "kept in the report" in html and "from lab.progress import bar" not in html  # code hidden
    assert LAB_ENV_CLEAN()


def LAB_ENV_CLEAN() -> bool:  # noqa: N802 - reads as a statement in the assert above
    return "LAB_PROGRESS_LOG" not in os.environ


def test_only_metrics_written_by_this_run_are_logged(tmp_path, isolated_mlflow, capfd):
    import mlflow

    nb = _notebook(tmp_path / "stage.ipynb", "x = 1")
    (tmp_path / "params.yaml").write_text("{}\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"stale": 1.0}))
    old = time.time() - 3600
    os.utime(out / "metrics.json", (old, old))
    res = run_notebook(nb, {"out": str(out)}, params_file=tmp_path / "params.yaml", out_dir=out)
    assert res.metrics == {}
    assert "metrics.json was not written by this run" in capfd.readouterr().err
    assert "stale" not in mlflow.get_run(res.run_id).data.metrics

    res = run_notebook(nb, {"out": str(out), "write_metrics": True}, params_file=tmp_path / "params.yaml",
                       out_dir=out)
    assert res.metrics == {"score": 0.5}
    assert mlflow.get_run(res.run_id).data.metrics["score"] == 0.5


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_dvc_hash_equals_dvc_and_datasets_are_logged(tmp_path, isolated_mlflow, kind):
    import subprocess

    import mlflow
    import yaml

    from lab import tracking

    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_text("alpha\n")
    (data / "sub" / "b.txt").write_text("beta\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    target = data / "a.txt" if kind == "file" else data
    subprocess.run(["dvc", "add", "-q", str(target.relative_to(tmp_path))], cwd=tmp_path, check=True)
    recorded = yaml.safe_load(target.with_name(target.name + ".dvc").read_text())["outs"][0]["md5"]
    assert tracking.dvc_hash(target) == recorded
    with tracking.stage_run("demo", root=tmp_path) as run:
        logged = tracking.log_dataset_inputs({"corpus": target}, root=tmp_path)
    assert logged[0]["digest"] == recorded
    (ds,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert ds.dataset.digest == recorded[:36] and ds.dataset.name.startswith("corpus:data")


def test_terminal_redraws_become_lines_in_a_file():
    from lab.runner import _as_lines

    text, state = "", True
    for chunk in ("\rgen: 0%|", "\rgen: 27%|", "\r      \r", "\x1b[Adone\n", "\n\n", "next"):
        part, state = _as_lines(chunk, state)
        text += part
    assert text == "gen: 0%|\ngen: 27%|\ndone\nnext" and state is False


def test_lab_report_writes_a_self_contained_html_with_the_plot_and_the_override(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from lab.cli import app

    body = ("import matplotlib.pyplot as plt\n"
            "fig, ax = plt.subplots()\nax.plot([1, 2, 3])\nplt.show()\nprint('value of out:', out)")
    nb = _notebook(tmp_path / "study.ipynb", body)
    (tmp_path / "params.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    html = tmp_path / "reports" / "study.html"
    res = CliRunner().invoke(app, ["report", str(nb), "-p", "out", "scheduled", "--out", str(html),
                                   "--out-dir", str(tmp_path / "o"), "--no-track"])
    assert res.exit_code == 0, res.output
    text = html.read_text()
    assert "value of out: scheduled" in text and 'src="data:image/png;base64,' in text
    assert 'src="https://' not in text and 'src="http://' not in text   # nothing to fetch: opens offline


def test_lab_report_leaves_the_stage_s_results_alone_unless_in_place(tmp_path, monkeypatch):
    import shutil

    from conftest import REPO, require_data
    from typer.testing import CliRunner

    from lab.cli import app

    shutil.copytree(require_data() / "chroma_chunking" / "corpora", tmp_path / "corpora")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data_quality": {
        "corpora": [{"name": "chroma", "path": "corpora", "glob": "*.md"}], "max_docs_per_corpus": 1,
        "out_dir": "results/data_quality"}}))
    monkeypatch.chdir(tmp_path)
    args = ["report", str(REPO / "notebooks" / "data_quality.ipynb"), "--out", "r.html", "--no-track"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "reports" / "data_quality" / "metrics.json").is_file()
    assert not (tmp_path / "results").exists()       # the stage's committed results are untouched
    res = CliRunner().invoke(app, [*args, "--in-place"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "results" / "data_quality" / "metrics.json").is_file()
    assert CliRunner().invoke(app, [*args, "--in-place", "--out-dir", "x"]).exit_code != 0
