"""Wall time of one retrieval sweep on a Ray cluster of 1 node vs 2 nodes, 1 CPU each.

    python benchmarks/ray_sweep_scale.py [--rounds 2] [--titles 48] [--max-queries 3000]
        [--sizes 96 128 160 192 256 320 384 512] [--cores-shared] [--out benchmarks/results/ray_sweep_scale.json]

Starts the team stack's Ray nodes (:mod:`lab.team.raynodes`, what ``lab team up --only ray``
starts: a head and one worker node, each its own ``ray start`` process with 1 CPU, on 127.0.0.1) in
a temporary folder, and runs the same retrieval sweep (BM25, 2 chunkers x 8 sizes = 16 trials on
the SQuAD dev articles: no model, so it runs offline) from a driver process that joins with ``address: auto``
(``RAY_ADDRESS`` and the token's path, as ``DIR/env`` exports them), each run in fresh folders
(nothing resumed):

- ``2 nodes``: head and worker up; at most 2 trials at once, one per node;
- ``1 node``: the worker node stopped; the head's 1 CPU runs the trials one after another.

The runs follow the order 2, 1, 1, 2 (then again for a further pair of rounds), so that a drift in
the machine's load weighs on both arms alike; one discarded warm-up run on 2 nodes comes first
(files into the page cache). The nodes are stopped at the end, and the script fails if a process of
theirs is left.

Each driver joins the cluster first and waits until every CPU of it is free (the previous driver's
trial actors are torn down asynchronously). Figures per run: the sweep's wall time (``run_sweep``:
Ray Tune and every trial, the ``sweep.wall_s`` a stage reports, here without joining the cluster),
the driver process's wall time, trials per node (``nodes_used``: a 2-node run may leave a node
idle, see below), when each node's first trial started, and every trial's own time (and their sum: the work that can spread over nodes; the rest of a sweep's
wall is the cost of joining the cluster, starting the trials' worker processes and Ray Tune's
bookkeeping). Per arm the median; ``ratio_1_over_2``: median 1-node wall / median 2-node wall
(2.0 would be perfect scaling); ``ratio_1_over_2_spread``: the same over the 2-node runs whose
trials ran on both nodes. A 2-node run need not use both: Ray Tune reuses a finished trial's worker
(``reuse_actors``, so that workers keep loaded models) for the next pending trial, even one whose
worker is still starting on the other node (it cancels that start), so a node slow to start its
worker can be left without trials. An earlier version of this script, without the wait for free
CPUs, saw that in 2 of 3 two-node runs on the loaded machine; why it did is not established. ``--cores-shared`` marks figures measured while other work
ran on the machine: both nodes then compete with it (and each other) for the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lab.team.raynodes import Proc, RaySettings

REPO = Path(__file__).resolve().parents[1]
PARAGRAPHS = REPO / "data" / "squad_v1.1_dev" / "dev-v1.1.paragraphs.jsonl"
QA = REPO / "data" / "squad_v1.1_dev" / "dev-v1.1.qa.jsonl"


def largest_titles(n: int) -> list[str]:
    """The ``n`` SQuAD dev articles with the most paragraphs."""
    counts: dict[str, int] = {}
    with open(PARAGRAPHS, encoding="utf-8") as fh:
        for line in fh:
            title = json.loads(line)["title"]
            counts[title] = counts.get(title, 0) + 1
    return [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def experiment_yaml(titles: list[str], max_queries: int, sizes: list[int]) -> str:
    """The sweep: BM25 over chunkers x ``sizes`` on ``titles`` (absolute data paths)."""
    return (f"version: 1\nname: ray-sweep-scale\nstudy: retrieval\n"
            f"dataset:\n  kind: squad_chunks\n  paragraphs: {PARAGRAPHS}\n  qa: {QA}\n"
            f"  titles: {json.dumps(titles)}\n  max_queries: {max_queries}\n  seed: 0\n"
            f"search:\n  mode: grid\n  space:\n    chunker: [recursive, token]\n    size: {json.dumps(sizes)}\n"
            f"fixed:\n  overlap: 0\n  retriever: bm25\n  embedder: all-minilm-l6-v2\n  ks: [1, 5]\n")


# --------------------------------------------------------------------------- the driver (a subprocess)


def drive(folder: Path) -> dict:
    """Run the sweep of ``folder/experiment.yaml`` on the cluster of ``RAY_ADDRESS``; what it measured."""
    import ray

    from lab.config.sections import RetrievalSweepConfig
    from lab.raycluster import ensure_ray
    from lab.studies.retrieval import run_retrieval_sweep

    ensure_ray(address="auto")   # joined here as the sweep would; the sweep then finds Ray initialised
    t0 = time.monotonic()
    # a CPU still held by the previous driver's trial actor (being torn down) would skew placement
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
        if time.monotonic() - t0 > 120:
            break
        time.sleep(0.5)
    settle = time.monotonic() - t0
    cfg = RetrievalSweepConfig(experiment=str(folder / "experiment.yaml"), metric="hit_rate@5", backend="ray",
                               address="auto", cpus_per_trial=1, max_concurrent=2, n_resamples=100,
                               out_dir=str(folder / "out"))
    start = time.time()
    outcome = run_retrieval_sweep(cfg, REPO, store_dir=folder / "store", progress=False)
    first: dict[str, float] = {}   # per node: when its first trial started, from the sweep's start
    for r in outcome["results"]:
        node = (r.get("placement") or {}).get("node_name", "?")
        began = r["finished_at"] - r["metrics"]["trial_wall_s"] - start
        first[node] = round(min(first.get(node, began), began), 1)
    return {"sweep_wall_s": outcome["sweep"]["wall_s"], "ran": outcome["sweep"]["ran"],
            "placement": outcome["sweep"]["placement"], "nodes_used": len(outcome["sweep"]["placement"]),
            "first_trial_start_s": dict(sorted(first.items())), "wait_free_cpus_s": round(settle, 1),
            "trial_wall_s": sorted(r["metrics"]["trial_wall_s"] for r in outcome["results"]),
            "trials_sum_s": round(sum(r["metrics"]["trial_wall_s"] for r in outcome["results"]), 2)}


def run_driver(work: Path, env: dict[str, str], label: str) -> dict:
    """One sweep in fresh folders under ``work``, from a new driver process."""
    folder = Path(tempfile.mkdtemp(prefix=f"run-{label}-", dir=work))
    (folder / "experiment.yaml").write_text((work / "experiment.yaml").read_text(), encoding="utf-8")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, __file__, "--driver", str(folder)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"the {label} sweep failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"arm": label, **out, "driver_wall_s": round(wall, 2),
            "load_average_1m": round(os.getloadavg()[0], 2)}


# --------------------------------------------------------------------------- the cluster


def free_block() -> int:
    """A head port whose whole block of ports is free here."""
    from lab.team.daemons import port_in_use

    for _ in range(200):
        port = random.randrange(20000, 40000, 10)
        if not any(port_in_use("127.0.0.1", p) for ports in RaySettings(port=port).listen_ports().values()
                   for p in ports):
            return port
    raise RuntimeError("no free block of ports for a Ray cluster")


def wait_nodes(d: Path, settings: RaySettings, want: int, timeout_s: float = 120) -> None:
    """Until the head lists ``want`` alive nodes (a stopped node is marked dead within seconds)."""
    from lab.team.raynodes import nodes

    deadline = time.monotonic() + timeout_s
    while (have := sum(n["alive"] for n in nodes(d, settings))) != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the head lists {have} alive nodes, not {want}, after {timeout_s:.0f} s")
        time.sleep(1)


def below(proc: Proc) -> list[psutil.Process]:
    """The node's ``ray start`` and every process under it (Ray's workers run in process groups of
    their own, under the raylet, so the node's group alone does not name them)."""
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stop_and_check(proc: Proc) -> list[int]:
    """Stop a node; the PIDs of its processes still running afterwards (then killed)."""
    from lab.team import raynodes

    seen = below(proc)
    raynodes.stop_node(proc)
    left = []
    for p in seen:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p.pid)
                p.kill()
        except psutil.Error:
            pass
    return left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="runs per arm (order 2,1,1,2,...)")
    ap.add_argument("--titles", type=int, default=48, help="the largest SQuAD dev articles to search")
    ap.add_argument("--max-queries", type=int, default=3000)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160, 192, 256, 320, 384, 512])
    ap.add_argument("--cores-shared", action="store_true", help="other work ran on the machine meanwhile")
    ap.add_argument("--out", default=None)
    ap.add_argument("--driver", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.driver:
        print(json.dumps(drive(Path(args.driver))))
        return 0

    from lab.io import write_json
    from lab.team import raynodes

    work = Path(tempfile.mkdtemp(prefix="lab-ray-scale-"))
    titles = largest_titles(args.titles)
    (work / "experiment.yaml").write_text(experiment_yaml(titles, args.max_queries, args.sizes), encoding="utf-8")
    settings = raynodes.RaySettings(port=free_block(), workers=1, cpus=1)
    d = work / "team"
    raynodes.token_file(d, {"ray_auth_token": raynodes.new_token()})
    raynodes.check_ports(settings, set())
    env = {**os.environ, **raynodes.client_env(d, settings), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]   # the nodes' workers import this checkout's lab
    links = [t for t in (raynodes.node_temp_dir(d, n) for n in settings.names()) if t.is_symlink()]
    procs: dict[str, Proc] = {}
    starts: list[float] = []
    left: list[int] = []
    runs: list[dict] = []
    try:
        for i, name in enumerate(settings.names()):
            t0 = time.monotonic()
            procs[name] = raynodes.start_node(d, settings, i)
            starts.append(round(time.monotonic() - t0, 1))
        wait_nodes(d, settings, 2)
        warm = run_driver(work, env, "warmup")
        print(f"warm-up (2 nodes): sweep {warm['sweep_wall_s']} s, {warm['placement']}", flush=True)
        order = [2, 1, 1, 2] * ((args.rounds + 1) // 2)
        order = order[:2 * args.rounds]
        for arm in order:
            worker_up = "ray-worker-1" in procs
            if arm == 1 and worker_up:
                left += stop_and_check(procs.pop("ray-worker-1"))
                wait_nodes(d, settings, 1)
            elif arm == 2 and not worker_up:
                t0 = time.monotonic()
                procs["ray-worker-1"] = raynodes.start_node(d, settings, 1)
                starts.append(round(time.monotonic() - t0, 1))
                wait_nodes(d, settings, 2)
            run = run_driver(work, env, f"{arm}node")
            runs.append(run)
            print(f"{arm} node(s): sweep {run['sweep_wall_s']} s (driver {run['driver_wall_s']} s), "
                  f"trials per node {run['placement']}, first trial per node at {run['first_trial_start_s']} s, "
                  f"load {run['load_average_1m']}", flush=True)
    finally:
        for name in reversed(list(procs)):   # workers before the head, as `lab team down`
            left += stop_and_check(procs[name])
    if left:
        raise RuntimeError(f"processes of the nodes left after stopping them: {left}")

    arms = {}
    for arm in ("2node", "1node"):
        mine = [r for r in runs if r["arm"] == arm]
        trials = [t for r in mine for t in r["trial_wall_s"]]
        arms[arm] = {"runs": len(mine), "sweep_wall_s_median": statistics.median(r["sweep_wall_s"] for r in mine),
                     "driver_wall_s_median": statistics.median(r["driver_wall_s"] for r in mine),
                     "trials_sum_s_median": statistics.median(r["trials_sum_s"] for r in mine),
                     "trial_wall_s_median": statistics.median(trials), "trial_wall_s_mean": round(statistics.mean(trials), 3)}
    ratio = arms["1node"]["sweep_wall_s_median"] / arms["2node"]["sweep_wall_s_median"]
    spread = [r["sweep_wall_s"] for r in runs if r["arm"] == "2node" and r["nodes_used"] == 2]
    ratio_spread = arms["1node"]["sweep_wall_s_median"] / statistics.median(spread) if spread else None
    result = {
        "what": "one retrieval sweep (BM25, grid chunker x size) on a Ray cluster from lab's team nodes: "
                "1 node of 1 CPU vs 2 nodes of 1 CPU each, both nodes as separate `ray start` processes on this machine",
        "measured": time.strftime("%Y-%m-%d"), "cores_shared": bool(args.cores_shared),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "sweep": {"configs": len(warm["trial_wall_s"]), "titles": titles, "max_queries": args.max_queries,
                  "sizes": args.sizes, "chunkers": ["recursive", "token"], "retriever": "bm25",
                  "cpus_per_trial": 1, "max_concurrent": 2},
        "node_start_s": starts, "warmup": warm, "runs": runs, "arms": arms,
        "ratio_1_over_2": round(ratio, 2),
        "ratio_1_over_2_spread": round(ratio_spread, 2) if ratio_spread else None,
        "two_node_runs_on_both_nodes": f"{len(spread)} of {sum(r['arm'] == '2node' for r in runs)}",
        "command": "python benchmarks/ray_sweep_scale.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    print(f"median sweep wall: 1 node {arms['1node']['sweep_wall_s_median']} s, 2 nodes "
          f"{arms['2node']['sweep_wall_s_median']} s; ratio {ratio:.2f} (2-node runs on both nodes: "
          f"{result['two_node_runs_on_both_nodes']}, ratio over those {result['ratio_1_over_2_spread']})")
    if args.out:
        write_json(args.out, result)
        print(f"wrote {args.out}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    for link in links:   # the short links to the nodes' folders (a long temporary path needs them)
        link.unlink(missing_ok=True)
        if not any(link.parent.iterdir()):
            link.parent.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
