"""Sweeps for a Ray cluster, run as a driver process: ``python tests/ray_sweep_fixture.py KIND FOLDER``.

``retrieval``: a tiny retrieval sweep, 4 BM25 trials (2 chunkers x 2 sizes) on one SQuAD article,
through the retrieval sweep's own code (:func:`lab.studies.retrieval.run_retrieval_sweep`, Ray
backend, ``address: auto``: ``RAY_ADDRESS`` from the team stack's env file), trials in ``FOLDER/out``.
BM25 needs no embedding model, so it runs offline on any machine with the demo data.

``slow``: 4 trials of :func:`slow_trial` (each marks its start in ``FOLDER/started/`` with where it
runs, then sleeps), for stopping a node while trials run.

Prints one JSON line: the sweep's trials, each with its configuration and placement.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

EXPERIMENT = """\
version: 1
name: tiny-cluster-sweep
study: retrieval
dataset:
  kind: squad_chunks
  paragraphs: {repo}/data/squad_v1.1_dev/dev-v1.1.paragraphs.jsonl
  qa: {repo}/data/squad_v1.1_dev/dev-v1.1.qa.jsonl
  titles: [Amazon_rainforest]
  max_queries: 40
  seed: 0
search:
  mode: grid
  space:
    chunker: [recursive, token]
    size: [128, 256]
fixed:
  overlap: 0
  retriever: bm25
  embedder: all-minilm-l6-v2
  ks: [1, 5]
"""


def write_experiment(folder: Path) -> Path:
    path = folder / "tiny_sweep.yaml"
    path.write_text(EXPERIMENT.format(repo=REPO), encoding="utf-8")
    return path


def run(folder: Path, address: str = "auto") -> dict:
    """Run the tiny sweep on the cluster at ``address``; its trials, each with its placement."""
    from lab.config.sections import RetrievalSweepConfig
    from lab.studies.retrieval import run_retrieval_sweep

    cfg = RetrievalSweepConfig(experiment=str(write_experiment(folder)), metric="hit_rate@5", backend="ray",
                               address=address, cpus_per_trial=1, max_concurrent=2, n_resamples=100,
                               out_dir=str(folder / "out"))
    outcome = run_retrieval_sweep(cfg, REPO, store_dir=folder / "store", progress=False)
    return {"sweep": outcome["sweep"],
            "trials": [{"trial_id": r["trial_id"], "config": {k: r["config"][k] for k in ("chunker", "size")},
                        "placement": r.get("placement")} for r in outcome["results"]]}


def slow_trial(config: dict) -> dict:
    """Mark the start (``<started>/<i>.<pid>.json``: where it runs), sleep ``sleep`` seconds, score ``i``."""
    import os

    from lab.io import write_json
    from lab.sweep import placement

    write_json(Path(config["started"]) / f"{config['i']}.{os.getpid()}.json", {**placement(), "at": time.time()})
    time.sleep(config["sleep"])
    return {"score": float(config["i"])}


def run_slow(folder: Path, address: str = "auto", n: int = 4, sleep: float = 6.0) -> dict:
    """Run ``n`` slow trials on the cluster at ``address``."""
    from lab.sweep import run_sweep

    configs = [{"i": i, "sleep": sleep, "started": str(folder / "started")} for i in range(n)]
    sweep = run_sweep(slow_trial, configs, folder / "out", metric="score", mode="max", backend="ray",
                      address=address, cpus_per_trial=1, max_concurrent=2, progress=False)
    return {"ran": sweep.ran, "trials": [{"trial_id": r["trial_id"], "config": {"i": r["config"]["i"]},
                                          "finished_at": r["finished_at"], "placement": r.get("placement")}
                                         for r in sweep.results]}


if __name__ == "__main__":
    kind, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(out) if kind == "retrieval" else run_slow(out)))
