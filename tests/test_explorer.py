"""The marimo run explorer: lab.explorer's tables, and the app served on 127.0.0.1 and read in headless Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import browser
import pytest

from lab import explorer

ROOT = Path(__file__).parents[1]


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("lab")
    for i, (stage, k) in enumerate([("demo_stage", 5), ("demo_stage", 10), ("other_stage", 5)]):
        with mlflow.start_run(run_name=f"{stage}-{i}"):
            mlflow.set_tags({"lab.stage": stage, "git.commit": f"{i:040d}"})
            mlflow.log_params({"k": k, "chunker": "recursive"})
            mlflow.log_metrics({"hit_rate": 0.5 + 0.1 * i, "latency_ms": 3.0})
    return uri


def test_runs_are_read_filtered_and_compared(store):
    df = explorer.runs_frame()
    assert len(df) == 3 and explorer.stages(df) == ["demo_stage", "other_stage"]
    demo = explorer.filter_runs(df, stage="demo_stage")
    assert len(demo) == 2 and len(explorer.filter_runs(demo, params={"k": 10})) == 1
    assert explorer.filter_runs(demo, params={"nope": 1}).empty
    table = explorer.compare(demo, list(demo["run"]))
    assert "param:k" in table.index and "metric:hit_rate" in table.index
    assert "param:chunker" not in table.index and "metric:latency_ms" not in table.index   # the same in both
    assert list(explorer.overview(demo).columns[-2:]) == ["param:k", "metric:hit_rate"]
    assert list(explorer.metric_history(demo, "hit_rate")["hit_rate"]) == pytest.approx([0.5, 0.6])


@pytest.mark.slow
@pytest.mark.skipif(browser.chromium() is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_app_serves_on_localhost_and_shows_the_runs_in_chromium(store, tmp_path):
    port = browser.free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    proc = subprocess.Popen([sys.executable, "-m", "marimo", "run", str(ROOT / "notebooks" / "explorer.py"),
                             "--host", "127.0.0.1", "--port", str(port), "--headless", "--no-token"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        browser.wait_http(f"http://127.0.0.1:{port}/", timeout=90)
        text, png = browser.render(f"http://127.0.0.1:{port}/", wait_for="A metric across runs", timeout=120)
        browser.save(png, tmp_path / "explorer.png")
        assert "3 MLflow runs" in text and "demo_stage 2" in text and "other_stage 1" in text
        assert "demo_stage-1" in text and "demo_stage-0" in text   # the runs table of the first stage
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
