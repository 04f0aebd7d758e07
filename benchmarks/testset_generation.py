"""Seconds per kept question and the share each filter drops, per generator, on real documents.

A few FedRAMP Markdown documents of ``data/own_docs/markdown`` are copied as ``.txt`` into a temporary
corpus folder (what ``lab ingest`` would hand the stage, minus its Markdown clean-up), and
:func:`lab.testset.generate_testset` makes ``--n`` questions with each model, from an empty generation
cache (so every reply is generated and timed). Recorded per model: kept per type, passages tried,
filtered per filter (and as a share of the candidates), retries, answer spans, seconds per kept
question, and the first questions of each type for reading.

    python benchmarks/testset_generation.py --n 20 --shared \\
        --models smollm2-135m-instruct qwen2.5-coder-0.5b-instruct
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["fedramp-scope-guidelines.md", "2024-03-28-a-new-roadmap-for-fedramp.md", "csp-playbook-significant-changes.md",
        "agency-playbook-preparation.md", "2024-08-09-strengthening-the-use-of-cryptography-to-secure-federal-cloud-systems.md"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "testset_generation.json"))
    ap.add_argument("--shared", action="store_true", help="label the figures: other work shared the cores")
    args = ap.parse_args()

    from lab.config import TestsetConfig
    from lab.testset import generate_testset

    cfg = TestsetConfig()
    runs = []
    with tempfile.TemporaryDirectory(prefix="testset-bench-") as tmp:
        corpus = Path(tmp) / "docs"
        corpus.mkdir()
        for name in DOCS:
            shutil.copy(ROOT / "data" / "own_docs" / "markdown" / name, corpus / (Path(name).stem + ".txt"))
        for model in args.models:
            cache = Path(tmp) / f"cache-{model}"
            started = time.perf_counter()
            result = generate_testset(corpus, args.n, backend={"backend": "transformers", "model": model,
                                                               "batch_size": cfg.backend.batch_size,
                                                               "threads": args.threads},
                                      seed=args.seed, cache_dir=cache, settings=cfg, progress=True)
            wall = time.perf_counter() - started
            m = result.meta
            tried = sum(m["candidates"].values())
            samples = {t: [{"question": r["question"], "answer": r["answer"],
                            "excerpt": [ref["content"][:300] for ref in json.loads(r["references"])]}
                           for r in result.rows if r["question_type"] == t][:5] for t in m["types"]}
            runs.append({
                "model": model, "generator": m["generator"], "revision": m["generator_identity"].get("revision"),
                "kept": m["kept"], "counts": m["counts"], "candidates": m["candidates"],
                "keep_rate": round(m["kept"] / tried, 3) if tried else None,
                "filtered": m["filtered"],
                "filtered_share_of_candidates": {k: round(v / tried, 3) for k, v in m["filtered"].items()} if tried else {},
                "filtered_by_type": m["filtered_by_type"], "retries": m["retries"],
                "answer_spans": m["answer_spans"], "generations": m["generations"],
                "seconds_per_kept": m["timings"]["seconds_per_kept"], "seconds_generating": m["timings"]["seconds_generating"],
                "wall_s": round(wall, 1), "shortfall": m["shortfall"], "samples": samples,
            })
            print(json.dumps({k: runs[-1][k] for k in ("model", "kept", "counts", "candidates", "seconds_per_kept")}),
                  flush=True)
    out = {
        "what": "lab.testset.generate_testset on 5 FedRAMP Markdown documents (data/own_docs/markdown, as .txt), "
                "empty generation cache, default testset settings",
        "documents": DOCS, "n": args.n, "seed": args.seed, "threads": args.threads,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "cores_shared": bool(args.shared)},
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
