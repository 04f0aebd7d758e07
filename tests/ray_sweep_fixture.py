"""A tiny retrieval sweep for a Ray cluster: 4 BM25 trials (2 chunkers x 2 sizes) on one SQuAD article.

``python tests/ray_sweep_fixture.py FOLDER [ADDRESS]`` writes the experiment into FOLDER, runs the
retrieval sweep's own code (:func:`lab.studies.retrieval.run_retrieval_sweep`, Ray backend, the
given address, ``auto`` by default: ``RAY_ADDRESS`` from the team stack's env file) with its trials in
``FOLDER/out``, and prints one JSON line: every trial's id, configuration and placement. BM25 needs
no embedding model, so the trials run offline on any machine with the demo data.
"""

from __future__ import annotations

import json
import sys
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


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(out, sys.argv[2] if len(sys.argv) > 2 else "auto")))
