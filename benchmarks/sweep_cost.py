"""What the shared embedding store saves a sweep: cold store vs warm store vs re-embedding per config.

    python benchmarks/sweep_cost.py [--experiment experiments/retrieval_sweep.yaml] [--out FILE]

Runs the same sweep (default: the 24 configurations of experiments/retrieval_sweep.yaml) three
times, each into a fresh results folder:

- ``cold``: an empty store; every distinct text is embedded once before the trials;
- ``warm``: the store the cold run filled; nothing should be embedded;
- ``reembed``: no shared store; every trial embeds its own chunks and queries (the baseline).

Prints embeddings computed and wall time per mode; ``--out FILE`` writes JSON with one object per
mode (``cold``, ``warm``, ``reembed``) holding ``embeddings_computed`` (chunk/document vectors
computed), ``distinct_chunks`` (distinct chunk texts over all configurations), ``configs`` and
``wall_s``, plus ``query_embeddings_computed`` (question vectors, counted apart).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path


def one(mode: str, exp_path: Path, root: Path, store: Path, backend: str) -> dict:
    from lab.studies.retrieval import prepare_embeddings, retrieval_trial, sweep_configs
    from lab.sweep import load_experiment, run_sweep

    exp = load_experiment(exp_path)
    configs = sweep_configs(exp)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out:
        prepared = {"embeddings_computed": 0, "query_embeddings_computed": 0, "distinct_chunks": None}
        if mode != "reembed":
            prepared = prepare_embeddings(configs, exp.dataset, root, store_dir=store, progress=False)
        trial = functools.partial(retrieval_trial, dataset=exp.dataset, root=str(root), store_dir=str(store),
                                  cache="none" if mode == "reembed" else "shared")
        res = run_sweep(trial, configs, out, metric="hit_rate@5", mode="max", backend=backend, progress=False)
    computed = prepared["embeddings_computed"] + sum(r["metrics"]["embeddings_computed"] for r in res.results)
    queries = prepared["query_embeddings_computed"] + sum(r["metrics"]["query_embeddings_computed"]
                                                          for r in res.results)
    return {"embeddings_computed": int(computed), "distinct_chunks": prepared["distinct_chunks"],
            "query_embeddings_computed": int(queries), "configs": len(configs),
            "wall_s": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="experiments/retrieval_sweep.yaml")
    ap.add_argument("--root", default=".", help="folder the experiment's data paths are relative to")
    ap.add_argument("--backend", choices=["local", "ray"], default="local")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from lab.io import write_json

    root = Path(args.root).resolve()
    with tempfile.TemporaryDirectory() as store:
        results = {}
        for mode in ("cold", "warm", "reembed"):
            results[mode] = one(mode, Path(args.experiment), root, Path(store), args.backend)
            print(f"{mode:<8} {results[mode]}", flush=True)
    distinct = results["cold"]["distinct_chunks"]
    results["warm"]["distinct_chunks"] = results["reembed"]["distinct_chunks"] = distinct
    print(f"re-embedding computes {results['reembed']['embeddings_computed'] / max(results['cold']['embeddings_computed'], 1):.2f}x "
          f"the embeddings of the cold shared store and takes "
          f"{results['reembed']['wall_s'] / max(results['cold']['wall_s'], 1e-9):.2f}x its time; "
          f"the warm store {results['warm']['wall_s'] / max(results['cold']['wall_s'], 1e-9):.2f}x")
    if args.out:
        write_json(args.out, results)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
