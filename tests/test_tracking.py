import json
import subprocess
import sys

import pytest

from lab import tracking


def _git_repo(path):
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.email", "t@example.org"], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.name", "t"], check=True)
    (path / "dvc.yaml").write_text("stages: {}\n")
    (path / "data.dvc").write_text("outs:\n- md5: abc123.dir\n  path: data\n")
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "commit", "-qm", "init"], check=True)


def test_lineage_tags_follow_git_and_dvc(tmp_path):
    _git_repo(tmp_path)
    tags = tracking.lineage_tags("feedbeef", root=tmp_path)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert tags["git.commit"] == head and tags["git.dirty"] == "false"
    assert tags["dvc.data_hash.data"] == "abc123.dir" and tags["params.hash"] == "feedbeef"
    before = tags["dvc.data_hash"]
    (tmp_path / "data.dvc").write_text("outs:\n- md5: def456.dir\n  path: data\n")
    tags = tracking.lineage_tags(root=tmp_path)
    assert tags["git.dirty"] == "true" and tags["dvc.data_hash"] != before


def test_lineage_outside_git(tmp_path):
    tags = tracking.lineage_tags(root=tmp_path)
    assert tags["git.commit"] == "none" and tags["dvc.data_hash"] == "none"


def test_stage_run_logs_params_metrics_and_tags(tmp_path, isolated_mlflow):
    _git_repo(tmp_path)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"corpus": {"a": {"documents": 3}}, "flag": True, "name": "x"}))
    with tracking.stage_run("demo", params={"a": 1, "nested": {"b": [1, 2]}}, params_hash="h",
                            root=tmp_path) as run:
        logged = tracking.log_metrics_file(metrics)
    assert logged == {"corpus.a.documents": 3.0}  # booleans and strings are not metrics
    import mlflow

    got = mlflow.get_run(run.info.run_id)
    assert got.data.params["a"] == "1" and got.data.params["nested.b"] == "[1, 2]"
    assert got.data.metrics["corpus.a.documents"] == 3.0
    assert got.data.tags["lab.stage"] == "demo" and got.data.tags["dvc.data_hash.data"] == "abc123.dir"
    assert got.info.status == "FINISHED"
    assert str(isolated_mlflow) in tracking.tracking_uri()


def test_stage_run_marks_failure(tmp_path, isolated_mlflow):
    with pytest.raises(RuntimeError):
        with tracking.stage_run("boom", root=tmp_path) as run:
            raise RuntimeError("x")
    import mlflow

    assert mlflow.get_run(run.info.run_id).info.status == "FAILED"


def test_import_lab_is_light_and_turns_telemetry_off():
    code = ("import sys, os, lab.config, lab.tracking, lab.cli; "
            "heavy = [m for m in ('torch', 'mlflow', 'ray', 'faiss', 'vllm', 'transformers') if m in sys.modules]; "
            "print(heavy, os.environ['MLFLOW_DISABLE_TELEMETRY'], os.environ['RAY_USAGE_STATS_ENABLED'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout.strip()
    assert out == "[] true 0"


def test_child_run_nests_under_parent(tmp_path, isolated_mlflow, monkeypatch):
    with tracking.stage_run("parent", root=tmp_path) as run:
        monkeypatch.setenv(tracking.PARENT_RUN_ENV, run.info.run_id)
        cid = tracking.child_run("config-a", params={"size": 250}, metrics={"recall": 0.8}, root=tmp_path)
    import mlflow

    child = mlflow.get_run(cid)
    assert child.data.tags["mlflow.parentRunId"] == run.info.run_id
    assert child.data.params["size"] == "250" and child.data.metrics["recall"] == 0.8
    assert child.info.status == "FINISHED"
    monkeypatch.delenv(tracking.PARENT_RUN_ENV)
    orphan = mlflow.get_run(tracking.child_run("by-hand", root=tmp_path))
    assert orphan.data.tags["lab.parent"] == "none"
