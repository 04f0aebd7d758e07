import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from lab.errors import ConfigError, LabError
from lab.sweep import ResultStore, best, expand, load_experiment, placement_counts, run_sweep, trial_id

EXP = """
version: 1
name: t
study: toy
search:
  mode: {mode}
  num_samples: 3
  seed: 1
  space:
    a: [1, 2, 3]
    b: [x, y]
fixed: {{ks: [1, 5]}}
"""


def _exp(tmp_path, mode="grid", text=None):
    p = tmp_path / "e.yaml"
    p.write_text(text or EXP.format(mode=mode), encoding="utf-8")
    return p


def square(cfg):
    return {"score": cfg["a"] ** 2 + (cfg["b"] == "y")}


def test_grid_and_random_expansion(tmp_path):
    grid = expand(load_experiment(_exp(tmp_path)))
    assert len(grid) == 6 and all(c["ks"] == [1, 5] for c in grid)
    r1 = expand(load_experiment(_exp(tmp_path, "random")))
    r2 = expand(load_experiment(_exp(tmp_path, "random")))
    assert r1 == r2 and len(r1) == 3 and len({trial_id(c) for c in r1}) == 3


@pytest.mark.parametrize(("text", "message"), [
    (EXP.format(mode="grid").replace("study: toy", "study: toy\ncolour: red"), "colour: unknown key"),
    (EXP.format(mode="grid").replace("b: [x, y]", "b: []"), "search.space.b: needs at least one value"),
    (EXP.format(mode="grid").replace("{ks: [1, 5]}", "{a: 1}"), "both searched and fixed"),
    (EXP.format(mode="sometimes"), "search.mode"),
])
def test_experiment_errors_name_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_experiment(_exp(tmp_path, text=text))
    assert "e.yaml" in str(err.value) and message in str(err.value)


def test_local_sweep_and_best(tmp_path):
    configs = expand(load_experiment(_exp(tmp_path)))
    out = run_sweep(square, configs, tmp_path / "out", metric="score", mode="max", backend="local", progress=False)
    assert out.ran == 6 and out.skipped == 0 and len(out.results) == 6
    assert best(out.results, "score", "max")["config"]["a"] == 3
    assert best(out.results, "score", "min")["metrics"]["score"] == 1
    again = run_sweep(square, configs, tmp_path / "out", metric="score", mode="max", backend="local", progress=False)
    assert again.ran == 0 and again.skipped == 6


def test_each_result_records_where_it_ran(tmp_path):
    configs = expand(load_experiment(_exp(tmp_path)))[:2]
    out = run_sweep(square, configs, tmp_path / "out", metric="score", mode="max", backend="local", progress=False)
    for r in out.results:   # in this process, no Ray: host and pid only
        assert r["placement"]["pid"] == os.getpid() and r["placement"]["host"]
        assert "node_id" not in r["placement"]
    on_disk = json.loads(ResultStore(tmp_path / "out").path(out.results[0]["trial_id"]).read_text())
    assert on_disk["placement"] == out.results[0]["placement"]
    spread = [{"placement": {"node_name": "ray-head", "node_id": "a"}}, {"placement": {"node_id": "b"}},
              {"placement": {"node_name": "ray-head"}}, {"metrics": {}}]
    assert placement_counts(spread) == {"b": 1, "ray-head": 2}


class Flaky:
    """Fails on the configuration with a == 3 until healed."""

    def __init__(self):
        self.calls = []

    def __call__(self, cfg):
        self.calls.append(cfg["a"])
        if cfg["a"] == 3 and not getattr(self, "healed", False):
            raise RuntimeError("boom")
        return square(cfg)


def test_a_crash_keeps_finished_trials_and_the_rerun_does_only_the_rest(tmp_path):
    configs = expand(load_experiment(_exp(tmp_path)))
    flaky = Flaky()
    with pytest.raises(RuntimeError):
        run_sweep(flaky, configs, tmp_path / "out", metric="score", mode="max", backend="local", progress=False)
    done = len(ResultStore(tmp_path / "out").all())
    assert done == 4  # a in (1, 2) x b in (x, y) finished before the crash
    flaky.healed, flaky.calls = True, []
    out = run_sweep(flaky, configs, tmp_path / "out", metric="score", mode="max", backend="local", progress=False)
    assert out.ran == 2 and sorted(flaky.calls) == [3, 3] and len(out.results) == 6


SLOW_SWEEP = """
import sys, time
from lab.sweep import run_sweep

def slow(cfg):
    time.sleep(0.4)
    return {{"score": cfg["i"]}}

configs = [{{"i": i}} for i in range(12)]
run_sweep(slow, configs, {out!r}, metric="score", mode="max", backend="local", progress=False)
"""


def test_kill_9_mid_sweep_then_resume(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "sweep.py"
    script.write_text(textwrap.dedent(SLOW_SWEEP.format(out=str(out))), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "trials").glob("*.json"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {json.loads(p.read_text())["config"]["i"] for p in (out / "trials").glob("*.json")}
    assert 3 <= len(finished) < 12, finished
    assert not list((out / "trials").glob("*.tmp"))  # nothing half-written survives as a result

    calls = []

    def counting(cfg):
        calls.append(cfg["i"])
        return {"score": cfg["i"]}

    res = run_sweep(counting, [{"i": i} for i in range(12)], out, metric="score", mode="max", backend="local",
                    progress=False)
    assert sorted(calls) == sorted(set(range(12)) - finished)  # finished trials are not recomputed
    assert sorted(r["config"]["i"] for r in res.results) == list(range(12))  # and none is lost


def test_best_reports_missing_metric(tmp_path):
    with pytest.raises(LabError, match="available"):
        best([{"trial_id": "a", "metrics": {"x": 1}}], "y", "max")


@pytest.mark.slow
def test_ray_backend_runs_trials_in_workers(tmp_path, monkeypatch):
    # Ray workers import the trial function by module name: let them find this test module
    here = os.path.dirname(__file__)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])))
    configs = expand(load_experiment(_exp(tmp_path)))[:4]
    out = run_sweep(square, configs, tmp_path / "out", metric="score", mode="max", backend="ray", num_cpus=2,
                    cpus_per_trial=1, progress=False)
    assert out.ran == 4 and len(out.results) == 4
    assert all(r["worker_pid"] != os.getpid() for r in out.results)
    assert all(len(r["placement"]["node_id"]) == 56 and r["placement"]["node_ip"] for r in out.results)


def test_ties_go_to_the_configuration_not_the_trial_id():
    """A trial id hashes the code identity too: a tie must not flip when the code changes."""
    a = {"config": {"chunker": "recursive", "size": 256}, "metrics": {"m": 0.9}}
    b = {"config": {"chunker": "token", "size": 256}, "metrics": {"m": 0.9}}
    for ids in (("0aaa", "ffff"), ("ffff", "0aaa")):
        results = [{**a, "trial_id": ids[0]}, {**b, "trial_id": ids[1]}]
        assert best(results, "m", "max")["config"]["chunker"] == "recursive"
        assert best(list(reversed(results)), "m", "max")["config"]["chunker"] == "recursive"
