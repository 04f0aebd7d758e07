"""Ctrl-C and kill -9 stop long jobs cleanly: each job runs in its own process group in a subprocess,
gets SIGINT as a terminal would send it, and must exit in time, leave no process behind, leave no
truncated output, and resume on the rerun.

Jobs: a notebook stage through ``lab run`` (cells that start children, ignore interrupts, or do
resumable work), a Ray sweep, and a fine-tune in its trainer child (the tiny random Llama).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from lab.procs import alive

LAB = [sys.executable, "-m", "lab.cli"]

# ------------------------------------------------------------------ helpers
def _notebook(path: Path, body: str, params: str = "steps = 200") -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(textwrap.dedent(body))]
    nbformat.write(nb, str(path))
    return path


def _start(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The job in a process group of its own (a terminal's foreground job)."""
    return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the job ended before {path.name} appeared:\n{proc.stdout.read()}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def _wait_for_any(folder: Path, pattern: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Wait until ``folder`` holds a file matching ``pattern`` (for outputs that rotate away)."""
    deadline = time.time() + timeout
    while not any(folder.glob(pattern)):
        if proc.poll() is not None:
            pytest.fail(f"the job ended before {pattern} appeared in {folder}:\n{proc.stdout.read()}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {pattern} in {folder} within {timeout} s")
        time.sleep(0.05)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _interrupt(proc: subprocess.Popen, sig: int = signal.SIGINT, within: float = 60) -> tuple[int, float, str]:
    """Send ``sig`` to the job's process group; returns (exit code, seconds to exit, output)."""
    t0 = time.time()
    os.killpg(proc.pid, sig)
    try:
        out, _ = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        stuck = [(p.pid, " ".join(p.cmdline())[:120]) for p in _tree(proc.pid)]
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        pytest.fail(f"still running {within} s after {signal.Signals(sig).name}; processes then: {stuck}; "
                    f"output:\n{(out or '')[-4000:]}")
    return proc.returncode, time.time() - t0, out


def _none_left(procs: list[psutil.Process], within: float = 10.0) -> None:
    deadline = time.time() + within
    while alive(procs) and time.time() < deadline:
        time.sleep(0.2)
    left = [(p.pid, " ".join(p.cmdline())[:100]) for p in alive(procs)]
    for p in alive(procs):
        p.kill()
    assert not left, f"processes survived: {left}"


STEPS_CELL = """
import json, os, subprocess, sys, time
from pathlib import Path
from lab.io import write_json

out = Path(out_dir); (out / "steps").mkdir(parents=True, exist_ok=True)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
reused = sum(1 for i in range(steps) if (out / "steps" / f"{i}.json").exists())
print(f"reused {reused} steps", file=sys.stderr, flush=True)
(out / "started").write_text(str(child.pid))
for i in range(steps):
    if (out / "steps" / f"{i}.json").exists():
        continue
    time.sleep(0.2)
    write_json(out / "steps" / f"{i}.json", {"i": i, "payload": "x" * 1000})
write_json(out / "metrics.json", {"steps": steps, "reused": reused})
child.kill()
"""


# ------------------------------------------------------------------ lab run
def test_ctrl_c_stops_a_notebook_stage_and_the_rerun_resumes(tmp_path, isolated_mlflow):
    nb = _notebook(tmp_path / "work.ipynb", STEPS_CELL, params=f"steps = 200\nout_dir = {str(tmp_path / 'out')!r}")
    out = tmp_path / "out"
    proc = _start([*LAB, "run", str(nb), "--out", str(out)], tmp_path, {"LAB_MLFLOW_DIR": str(isolated_mlflow)})
    _wait_for(out / "steps" / "5.json", proc)
    tree = _tree(proc.pid)
    assert any("sleep(600)" in " ".join(p.cmdline()) for p in tree), "the notebook's child is not running"
    rc, took, text = _interrupt(proc)
    assert rc == 128 + signal.SIGINT, text
    assert took < 30, f"took {took:.1f} s to stop"
    assert "interrupted by SIGINT" in text and "the kernel and the processes it started are stopped" in text
    _none_left(tree)
    # nothing truncated: every step written parses; the partial notebook is a whole notebook
    done = sorted(out.glob("steps/*.json"))
    assert all(json.loads(p.read_text())["payload"] for p in done)
    assert not list(out.rglob("*.tmp*"))
    nbformat.read(str(out / "work.interrupted.ipynb"), as_version=4)
    assert not (out / "work.ipynb").exists() and not (out / "metrics.json").exists()
    # the MLflow run ends KILLED, tagged with the signal
    from mlflow.tracking import MlflowClient

    from lab.tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [(r.info.status, r.data.tags.get("lab.interrupted")) for r in runs] == [("KILLED", "SIGINT")]

    # the rerun resumes: finished steps are reused, the rest computed, the stage completes
    rerun = subprocess.run([*LAB, "run", str(nb), "--out", str(out), "--no-track"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["reused"] == len(done) and len(list(out.glob("steps/*.json"))) == 200


IGNORES_CELL = """
import subprocess, sys, time
from pathlib import Path
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"], start_new_session=True)
Path(marker).write_text(str(child.pid))
while True:          # a cell that swallows KeyboardInterrupt
    try:
        time.sleep(0.1)
    except KeyboardInterrupt:
        pass
"""


@pytest.mark.parametrize("second_ctrl_c", [False, True], ids=["grace-then-kill", "second-ctrl-c"])
def test_a_cell_that_ignores_the_interrupt_is_stopped(tmp_path, second_ctrl_c):
    marker = tmp_path / "started"
    nb = _notebook(tmp_path / "stubborn.ipynb", IGNORES_CELL, params=f"marker = {str(marker)!r}")
    grace = "60" if second_ctrl_c else "3"
    proc = _start([*LAB, "run", str(nb), "--out", str(tmp_path / "out"), "--no-track"], tmp_path,
                  {"LAB_INTERRUPT_GRACE_S": grace})
    _wait_for(marker, proc)
    tree = _tree(proc.pid)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    if second_ctrl_c:
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("did not stop")
    took = time.time() - t0
    assert proc.returncode == 130, out
    assert took < (15 if second_ctrl_c else 25), f"{took:.1f} s"  # generous bounds, grace 60 s vs 3 s
    # the child ignored SIGINT and SIGTERM and left the kernel's session: SIGKILL still reached it
    _none_left(tree)


def test_kill_9_of_lab_run_leaves_no_kernel_or_child(tmp_path):
    marker = tmp_path / "started"
    nb = _notebook(tmp_path / "stubborn.ipynb", IGNORES_CELL, params=f"marker = {str(marker)!r}")
    proc = _start([*LAB, "run", str(nb), "--out", str(tmp_path / "out"), "--no-track"], tmp_path)
    _wait_for(marker, proc)
    tree = _tree(proc.pid)
    watched = [p for p in tree if "lab.procs" not in " ".join(p.cmdline())]
    assert len(watched) >= 2  # the kernel and its child
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _none_left(tree, within=15)  # the reaper stopped the kernel's tree, then exited itself
    proc.stdout.close()


def _fake_dvc(folder: Path) -> Path:
    """A stand-in for ``dvc repro``: a script named ``dvc`` that runs its arguments."""
    script = folder / "dvc"
    script.write_text("import subprocess, sys\nsubprocess.run(sys.argv[1:])\n")
    return script


def test_kill_9_of_the_parent_stops_lab_run(tmp_path):
    """``kill -9`` of ``dvc repro`` does not reach the ``lab run`` it started: lab run notices."""
    marker = tmp_path / "started"
    nb = _notebook(tmp_path / "stubborn.ipynb", IGNORES_CELL, params=f"marker = {str(marker)!r}")
    parent = _start([sys.executable, str(_fake_dvc(tmp_path)),
                     *LAB, "run", str(nb), "--out", str(tmp_path / "out"), "--no-track"], tmp_path,
                    {"LAB_INTERRUPT_GRACE_S": "2"})
    _wait_for(marker, parent)
    tree = _tree(parent.pid)
    assert any("lab.cli" in " ".join(p.cmdline()) for p in tree)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()  # not communicate(): lab run still holds the output pipe until it has stopped
    _none_left(tree, within=30)
    parent.stdout.close()


def test_a_shell_that_started_lab_run_in_the_background_may_exit(tmp_path):
    """``nohup lab run ... &`` and the shell exits (or the terminal closes): the run goes on; only a
    dvc above it is watched."""
    done = tmp_path / "done"
    started = tmp_path / "started"
    body = f"""
    import time
    from pathlib import Path
    Path({str(started)!r}).write_text("x")
    time.sleep(4)
    Path({str(done)!r}).write_text("finished")
    """
    nb = _notebook(tmp_path / "bg.ipynb", body)
    shell = _start([sys.executable, "-c", "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)",
                    *LAB, "run", str(nb), "--out", str(tmp_path / "out"), "--no-track"], tmp_path)
    _wait_for(started, shell)
    os.kill(shell.pid, signal.SIGKILL)   # the starting shell is gone; lab run is reparented
    shell.wait()
    deadline = time.time() + 60
    while not done.exists() and time.time() < deadline:
        time.sleep(0.5)
    assert done.read_text() == "finished"
    shell.stdout.close()


# ------------------------------------------------------------------ sweep
SWEEP = """
import time
from lab.sweep import run_sweep

def slow(cfg):
    time.sleep(1.5)
    return {{"score": cfg["i"]}}

res = run_sweep(slow, [{{"i": i}} for i in range(16)], {out!r}, metric="score", mode="max", backend="ray",
                num_cpus=2, cpus_per_trial=1, progress=True)
print("ran", res.ran, "skipped", res.skipped)
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_ctrl_c_stops_a_ray_sweep_and_its_ray_processes_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "out"
    script = tmp_path / "sweep_job.py"
    script.write_text(textwrap.dedent(SWEEP.format(out=str(out))), encoding="utf-8")
    env = {"PYTHONPATH": str(tmp_path)}
    proc = _start([sys.executable, str(script)], tmp_path, env)
    deadline = time.time() + 240
    while len(list((out / "trials").glob("*.json"))) < 2:
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < deadline, "no trial finished in time"
        time.sleep(0.2)
    tree = _tree(proc.pid)
    assert any("raylet" in " ".join(p.cmdline()) for p in tree), [p.name() for p in tree]
    rc, took, text = _interrupt(proc, within=90)
    assert rc != 0 and "KeyboardInterrupt" in text, text
    _none_left(tree, within=20)
    done = list((out / "trials").glob("*.json"))
    assert 2 <= len(done) < 16 and all(json.loads(p.read_text())["metrics"] for p in done)
    rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**os.environ, **env, "LAB_PROGRESS": "1"},
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"ran {16 - len(done)} skipped {len(done)}" in rerun.stdout
    assert f"({len(done)} resumed)" in rerun.stderr  # the progress bar says how much it reused


# ------------------------------------------------------------------ fine-tune
TRAIN = """
import json, sys
from lab.finetune import FinetuneConfig
from lab.studies.finetune import _train_in_child

facts = [("What is the capital of France?", "Paris"), ("What colour is the sky?", "Blue"),
         ("How many legs has a dog?", "Four"), ("Who wrote Hamlet?", "Shakespeare")]
data = [{{"messages": [{{"role": "user", "content": q}}], "answer": a}} for q, a in facts]
cfg = FinetuneConfig(model="tiny-random-llama", max_steps={steps}, batch_size=2, save_every=2, eval_every=0,
                     threads=1, learning_rate=1e-2)
if __name__ == "__main__":
    info = _train_in_child(data, data[:1], cfg, {out!r})
    print(json.dumps({{"resumed_from_step": info["resumed_from_step"], "steps": info["steps"]}}))
"""


def test_ctrl_c_stops_the_trainer_child_and_the_rerun_resumes_from_its_checkpoint(tmp_path):
    from lab.finetune.checkpoint import list_checkpoints

    out = tmp_path / "run"
    script = tmp_path / "train_job.py"
    script.write_text(textwrap.dedent(TRAIN.format(out=str(out), steps=4000)), encoding="utf-8")
    proc = _start([sys.executable, str(script)], tmp_path)
    # checkpoints rotate (the newest two are kept), so wait for any complete one, not a given step
    _wait_for_any(out / "checkpoints", "step-*/state.json", proc, timeout=300)
    tree = _tree(proc.pid)
    assert tree, "no trainer child"
    rc, took, text = _interrupt(proc, within=60)
    assert rc != 0 and "KeyboardInterrupt" in text, text
    _none_left(tree)
    steps = [s for s, _ in list_checkpoints(out)]
    assert steps and not (out / "final").exists()
    # every checkpoint left is complete (written atomically), and the rerun starts from the newest
    for _, folder in list_checkpoints(out):
        assert json.loads((folder / "state.json").read_text())["step"] == int(folder.name.split("-")[1])
    script.write_text(textwrap.dedent(TRAIN.format(out=str(out), steps=max(steps) + 2)), encoding="utf-8")
    rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    info = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert info["resumed_from_step"] == max(steps) and info["steps"] == max(steps) + 2
    assert f"resuming from checkpoint step {max(steps)}" in rerun.stderr


HUNG_SHUTDOWN = """
import threading, time, psutil, ray
from lab.raycluster import ensure_ray, shutdown
ensure_ray(None, 1)
ray_procs = psutil.Process().children(recursive=True)
ray.shutdown = lambda *a, **k: threading.Event().wait(120)   # a shutdown that waits on a dead GCS
t0 = time.time()
finished = shutdown(timeout_s=3)
print("finished", finished, "took", round(time.time() - t0, 1), "left", sum(p.is_running() for p in ray_procs),
      "of", len(ray_procs))
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_a_hung_ray_shutdown_is_cut_off_and_its_processes_stopped(tmp_path):
    script = tmp_path / "hung.py"
    script.write_text(HUNG_SHUTDOWN, encoding="utf-8")
    t0 = time.time()
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    words = run.stdout.split()
    assert words[:2] == ["finished", "False"] and words[5] == "0" and int(words[7]) > 0, run.stdout
    assert float(words[3]) < 30 and "did not return within 3 s" in run.stderr
    assert time.time() - t0 < 150  # and the interpreter exits without waiting on Ray's exit hook
