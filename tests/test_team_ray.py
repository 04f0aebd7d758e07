"""The team stack's Ray cluster: a head and a worker node, each its own `ray start` process, on one machine.

The fast tests check the port layout and the errors. The cluster tests (markers ``team`` and
``slow``, opt-in: ``LAB_RAY_CLUSTER_TESTS=1 pytest -m "team and slow" tests/test_team_ray.py``;
a few minutes on a 2-core machine)
start the cluster with the CLI in a temporary folder on a free block of ports, as a user would, then: both nodes are listed alive by the head; the retrieval
sweep with ``address: auto`` runs trials on both nodes (each trial's placement names its node);
a worker node lost mid-sweep (its processes killed) costs no finished trial and its trial runs
again on the head; ``down`` leaves no process of either node (by process group and by every
process that ran below the nodes, Ray's workers included).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import REPO, require_data

from lab.errors import LabError
from lab.sweep import _lost_worker
from lab.team import RaySettings, TeamError
from lab.team.daemons import Proc, alive, group_members, port_in_use

FIXTURE = REPO / "tests" / "ray_sweep_fixture.py"


def _lab(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)


def _free_block() -> int:
    """A head port whose whole block (every node's ports and worker ranges) is free here."""
    for _ in range(200):
        port = random.randrange(20000, 40000, 10)
        if not any(port_in_use("127.0.0.1", p) for ports in RaySettings(port=port).listen_ports().values()
                   for p in ports):
            return port
    raise RuntimeError("no free block of ports for a Ray cluster")


# --------------------------------------------------------------------------- fast: no cluster


def test_each_node_gets_its_own_block_of_ports():
    s = RaySettings(port=30000, workers=2)
    assert s.names() == ["ray-head", "ray-worker-1", "ray-worker-2"]
    head, w1 = s.node_ports(0), s.node_ports(1)
    assert head["gcs"] == 30000 and s.address == "127.0.0.1:30000"
    assert w1["node_manager"] == 30011 and "gcs" not in w1
    every = [p for ports in s.listen_ports().values() for p in ports]
    assert len(every) == len(set(every)), "two nodes share a port"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workers": 0}, "--ray-workers 0"), ({"cpus": 0}, "--ray-cpus 0"), ({"port": 65500}, "--ray-port 65500"),
])
def test_bad_settings_name_the_option(kwargs, message):
    with pytest.raises(TeamError, match=message):
        RaySettings(**kwargs)


def test_a_port_in_use_fails_before_any_node_starts(tmp_path):
    import socket

    port = _free_block()
    busy = RaySettings(port=port).node_ports(1)["object_manager"]   # the worker node's, not the head's
    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        done = _lab("team", "up", "--only", "ray", "--dir", str(tmp_path), "--ray-port", str(port), timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {busy}" in done.stderr and "ray-worker-1" in done.stderr and "--ray-port" in done.stderr
    assert not (tmp_path / "ray" / "ray-head").exists()   # the head was not started either


def test_only_names_a_part_of_the_stack(tmp_path):
    done = _lab("team", "up", "--only", "spark", "--dir", str(tmp_path), timeout=120)
    assert done.returncode == 2 and "--only spark" in done.stderr and "tracking, ray" in done.stderr


def test_node_processes_skip_the_slow_import_that_ray_does_not_use(tmp_path):
    from lab.team.raynodes import SKIPPED_IMPORTS, _node_env

    env = _node_env(tmp_path, RaySettings(port=30000))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "ray" / "pythonpath")
    code = ("import sys, jsonschema; from jsonschema import FormatChecker; "
            "print(sorted(set(sys.modules) & set(sys.argv[1:])), 'iri' in FormatChecker.checkers)")
    done = subprocess.run([sys.executable, "-c", code, *SKIPPED_IMPORTS], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr   # jsonschema (Ray's runtime-env schemas) imports without it
    assert done.stdout.split() == ["[]", "False"]


def test_a_long_dir_gets_a_short_link_for_the_sockets_ray_puts_below_each_node(tmp_path):
    import shutil

    from lab.team.raynodes import SOCKET_PATH_MAX, SOCKET_SUFFIX, node_temp_dir

    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))
    try:
        assert node_temp_dir(short, "ray-head") == short / "ray" / "ray-head"   # short enough: DIR itself
    finally:
        shutil.rmtree(short)
    long_dir = tmp_path / ("x" * 60)
    link = node_temp_dir(long_dir, "ray-worker-1")
    try:
        assert link.is_symlink() and link.resolve() == (long_dir / "ray" / "ray-worker-1").resolve()
        assert len(str(link)) + SOCKET_SUFFIX <= SOCKET_PATH_MAX
        assert link.parent.stat().st_mode & 0o777 == 0o700
        assert node_temp_dir(long_dir, "ray-worker-1") == link   # a second start reuses it
    finally:
        shutil.rmtree(link.parent)


def test_a_trial_that_lost_its_worker_is_told_from_one_that_failed():
    from ray import exceptions as rx

    lost = rx.ActorDiedError()
    assert _lost_worker(lost) and _lost_worker(rx.NodeDiedError("node gone"))
    try:
        raise LabError("wrapped") from lost
    except LabError as exc:
        assert _lost_worker(exc)
    assert not _lost_worker(rx.RayTaskError("trial", "Traceback ...", ValueError("bad config")))
    assert not _lost_worker(ValueError("bad config"))


# --------------------------------------------------------------------------- a 2-node cluster


def _read_env(path: Path) -> dict[str, str]:
    import shlex

    return {k: shlex.split(v)[0] for k, _, v in (line[len("export "):].partition("=")
                                                  for line in path.read_text().splitlines() if line.startswith("export "))}


def _state(folder: Path) -> dict[str, Proc]:
    return {k: Proc(**v) for k, v in json.loads((folder / "state.json").read_text())["procs"].items()}


def _below(procs: dict[str, Proc]) -> list[psutil.Process]:
    """Every live process at or below the nodes' `ray start` processes (Ray's workers run in
    process groups of their own, under the raylet)."""
    out = []
    for p in procs.values():
        try:
            root = psutil.Process(p.pid)
            out += [root, *root.children(recursive=True)]
        except psutil.Error:
            pass
    return out


#: The cluster tests run when this is "1". Off by default, and the skip says why: Ray 2.60 gives
#: each node's dashboard agent a hard-coded 15 s to start (ray#65983), which a loaded 2-core machine
#: misses (seen here: every start failed at load 10-20 until the nodes' sessions got more CPU
#: weight), and its GCS and raylets listen on every interface, not only loopback, so a CI host
#: would expose them (token-guarded) while the tests run.
CLUSTER_TESTS = "LAB_RAY_CLUSTER_TESTS"


@pytest.fixture(scope="module")
def cluster():
    if os.environ.get(CLUSTER_TESTS) != "1":
        pytest.skip(f"2-node Ray cluster tests are opt-in: {CLUSTER_TESTS}=1 pytest -m 'team and slow' "
                    "tests/test_team_ray.py (Ray's 15 s agent start limit fails on a loaded 2-core machine; "
                    "its nodes listen beyond loopback)")
    require_data()
    folder = Path(tempfile.mkdtemp(prefix="lab-ray-"))
    port = _free_block()
    seen: list[psutil.Process] = []
    t0 = time.monotonic()
    done = _lab("team", "up", "--only", "ray", "--dir", str(folder), "--ray-port", str(port))
    try:
        assert done.returncode == 0, done.stdout + done.stderr
        print(f"lab team up --only ray: {time.monotonic() - t0:.1f} s")
        seen += _below(_state(folder))
        env = {**os.environ, **_read_env(folder / "env"), "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        yield folder, env, seen
    finally:
        if (folder / "state.json").exists() and _state(folder):   # a test failed before `down`
            _lab("team", "down", "--dir", str(folder))
        for p in seen:   # a test that failed may leave Ray workers of a killed node: none may outlive it
            try:
                p.kill()
            except psutil.Error:
                pass
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _alive_nodes(folder: Path) -> dict[str, str]:
    done = _lab("team", "status", "--dir", str(folder), "--json", timeout=120)
    nodes = json.loads(done.stdout)["ray"]["nodes"]
    return {n["name"]: n["node_id"] for n in nodes if n["alive"]}


def _driver(kind: str, folder: Path, env: dict, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(FIXTURE), kind, str(folder)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _result(proc: subprocess.Popen, timeout: float = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.team
@pytest.mark.slow
def test_the_head_lists_both_nodes_alive(cluster):
    folder, env, _ = cluster
    assert env["RAY_ADDRESS"].endswith(f":{json.loads((folder / 'state.json').read_text())['settings']['ray_port']}")
    assert (folder / "ray" / "auth_token").stat().st_mode & 0o777 == 0o600
    nodes = _alive_nodes(folder)
    assert set(nodes) == {"ray-head", "ray-worker-1"} and len(set(nodes.values())) == 2
    done = _lab("team", "status", "--dir", str(folder), timeout=120)
    assert done.returncode == 0 and "ray nodes (2 alive)" in done.stdout, done.stdout


@pytest.mark.team
@pytest.mark.slow
def test_the_retrieval_sweep_with_address_auto_runs_trials_on_both_nodes(cluster, tmp_path):
    folder, env, seen = cluster
    nodes = _alive_nodes(folder)
    driver = _driver("retrieval", tmp_path, env)
    seen += _below(_state(folder))
    out = _result(driver)
    used = {t["placement"]["node_id"] for t in out["trials"]}
    assert used == set(nodes.values()), out["trials"]
    assert set(out["sweep"]["placement"]) == set(nodes) and sum(out["sweep"]["placement"].values()) == 4
    for t in out["trials"]:   # the trial files on disk say the same
        record = json.loads((tmp_path / "out" / "trials" / f"{t['trial_id']}.json").read_text())
        assert record["placement"]["node_id"] in nodes.values() and record["placement"]["node_name"] in nodes


@pytest.mark.team
@pytest.mark.slow
def test_a_worker_node_lost_mid_sweep_loses_no_finished_trial(cluster, tmp_path):
    folder, env, seen = cluster
    started = tmp_path / "started"
    driver = _driver("slow", tmp_path, env)
    deadline = time.monotonic() + 300
    while not any("ray-worker-1" in f.read_text() for f in started.glob("*.json") if f.stat().st_size):
        assert driver.poll() is None and time.monotonic() < deadline, "no trial started on the worker node"
        time.sleep(0.3)
    worker = _state(folder)["ray-worker-1"]
    victims = _below({"w": worker})
    seen += _below(_state(folder))
    for p in victims:   # the host is lost: every process of the node, its Ray workers included
        p.kill()
    finished = {f.name: f.read_text() for f in (tmp_path / "out" / "trials").glob("*.json")}
    done_before = {json.loads(text)["config"]["i"] for text in finished.values()}
    out = _result(driver)
    assert sorted(t["config"]["i"] for t in out["trials"]) == [0, 1, 2, 3]
    for name, text in finished.items():   # finished before the loss: kept as they were, not run again
        assert (tmp_path / "out" / "trials" / name).read_text() == text
    marks = [json.loads(f.read_text()) | {"i": int(f.name.split(".")[0])} for f in started.glob("*.json")]
    lost = {m["i"] for m in marks if m.get("node_name") == "ray-worker-1"} - done_before
    assert lost, marks   # the trial that was running on the worker node when it was lost
    by_i = {t["config"]["i"]: t for t in out["trials"]}
    assert all(by_i[i]["placement"]["node_name"] == "ray-head" for i in lost), out["trials"]
    assert not alive(worker)


@pytest.mark.team
@pytest.mark.slow
def test_down_leaves_no_process_of_either_node(cluster):
    folder, _, seen = cluster
    procs = _state(folder)
    seen += _below(procs)
    done = _lab("team", "down", "--dir", str(folder), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    for p in procs.values():
        assert not alive(p) and group_members(p.pgid) == [], p
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [(p.pid, p.name()) for p in left]
    assert not _state(folder)
