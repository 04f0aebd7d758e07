"""How often the health report's drift checks alarm when nothing shifted, and how often they catch
questions from another corpus (issue 33 item 5).

    python benchmarks/monitor_drift.py [--retriever hybrid] [--embedder all-minilm-l6-v2] \\
        [--windows 20] [--window-size 100] [--eval-size 30] [--mix 0.25] [--seed 0] \\
        [--out benchmarks/results/monitor_drift.json]

A bundle is built as the export stage builds one (``lab.handoff.bundle.write_bundle``: the studies'
``ConfiguredRetriever`` indexes the passages) over the paragraphs of six SQuAD dev articles
(:data:`SERVED`), with ``--eval-size`` of their questions as its ``eval.jsonl`` (the demo's bundle
has 30). Then windows of ``--window-size`` questions, each scored by the bundle's own retriever (the
gateway's code, :class:`lab.serve.rag.RAG`) and checked by :func:`lab.monitor.report.drift` with the
default thresholds:

- ``same``: other questions on the served articles (nothing shifted: every alarm is a false one;
  this is the baseline the other rows are read against);
- ``other``: questions on six other articles (:data:`OTHER`): another corpus, the shift the report
  must flag;
- ``mixed``: a ``--mix`` share of ``other`` questions in a ``same`` window.

Each row gives, per check, the share of windows that alarmed (with its Wilson 95% interval) and the
median statistic and p-value. The trace reading is not timed or exercised here (``tests/test_monitor.py``
runs the whole path through the gateway's MLflow traces); the retrieval scores are what the
gateway's ``retrieval`` span records, by the same code.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO / "data" / "squad_v1.1_dev"
SERVED = ("1973_oil_crisis", "Amazon_rainforest", "Black_Death", "Geology", "Normans", "Warsaw")
OTHER = ("Pharmacy", "Oxygen", "Prime_number", "Steam_engine", "Kenya", "Doctor_Who")


def _load() -> tuple[dict[str, dict], list[dict], list[dict]]:
    corpus: dict[str, dict] = {}
    with open(SQUAD / "dev-v1.1.paragraphs.jsonl", encoding="utf-8") as fh:
        for line in fh:
            p = json.loads(line)
            if p["title"] in SERVED:
                corpus[p["paragraph_id"]] = {"title": p["title"].replace("_", " "), "text": p["text"]}
    same, other = [], []
    with open(SQUAD / "dev-v1.1.qa.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            if q["title"] in SERVED:
                same.append(q)
            elif q["title"] in OTHER:
                other.append(q)
    return corpus, same, other


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--retriever", default="hybrid", choices=["dense", "hybrid", "bm25"])
    ap.add_argument("--embedder", default="all-minilm-l6-v2")
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--window-size", type=int, default=100)
    ap.add_argument("--eval-size", type=int, default=30)
    ap.add_argument("--mix", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    from lab.export.winner import ArmScore, choose_arm
    from lab.generate.domain_qa_prompt import PROMPT_VERSION
    from lab.handoff.bundle import ServedModel, write_bundle
    from lab.metrics.proportions import wilson_ci
    from lab.monitor.baseline import offline_baseline
    from lab.monitor.config import MonitorConfig
    from lab.monitor.report import drift
    from lab.monitor.traces import Request
    from lab.serve.rag import RAG

    corpus, same, other = _load()
    rng = random.Random(args.seed)
    rng.shuffle(same)
    rng.shuffle(other)
    evaluated, same = same[:args.eval_size], same[args.eval_size:]
    config = {"retriever": args.retriever, "chunker": "none", "embedder": args.embedder}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = write_bundle(Path(tmp) / "bundle", retrieval_config=config, corpus=corpus,
                              model=ServedModel("m", spec="m"),
                              choice=choose_arm([ArmScore("rag", 0.5, 0.4, 0.6, 10, 1.0)]), k=5,
                              prompt_version=PROMPT_VERSION, generation={"max_new_tokens": 16},
                              eval_items=[{k: q[k] for k in ("id", "question", "answers", "title")} for q in evaluated],
                              provenance={"bundle_id": "bench"})
        rag = RAG(bundle)
        embedder = None if args.retriever != "bm25" else args.embedder
        base = offline_baseline(bundle, rag=rag, embedder=embedder)
        cfg = MonitorConfig()
        t_build = time.perf_counter() - t0

        def window(questions: list[dict]) -> dict[str, dict]:
            hits = rag.search([q["question"] for q in questions])
            rows = [Request(str(i), 0, None, True, question=q["question"], retrieved=True,
                            scores=tuple(s for _, s in h)) for i, (q, h) in enumerate(zip(questions, hits, strict=True))]
            return {c["name"]: c for c in drift(rows, base, cfg)[0]}

        n = args.window_size
        kinds = {
            "same": lambda w: rng.sample(same, n),
            "other": lambda w: rng.sample(other, n),
            "mixed": lambda w: rng.sample(same, n - round(n * args.mix)) + rng.sample(other, round(n * args.mix)),
        }
        t1 = time.perf_counter()
        rows = {}
        for kind, draw in kinds.items():
            results = [window(draw(w)) for w in range(args.windows)]
            row = {}
            for name in results[0]:
                alarms = sum(r[name]["status"] == "alert" for r in results)
                low, high = wilson_ci(alarms, len(results))
                row[name] = {"alarm_rate": alarms / len(results), "ci": [low, high], "windows": len(results),
                             "median_statistic": float(np.median([r[name].get("statistic", np.nan) for r in results])),
                             "median_p_value": float(np.median([r[name].get("p_value", np.nan) for r in results]))}
            rows[kind] = row
            print(f"{kind:>6}: " + "; ".join(f"{k} {v['alarm_rate']:.0%} (median stat {v['median_statistic']:.3g}, "
                                             f"p {v['median_p_value']:.2g})" for k, v in row.items()), flush=True)
        t_windows = time.perf_counter() - t1
    out = {"retriever": config, "k": 5, "served_articles": SERVED, "other_articles": OTHER,
           "eval_size": args.eval_size, "window_size": n, "windows": args.windows, "mix": args.mix,
           "seed": args.seed, "baseline": {**base.summary(), "bundle": "(a temporary folder)"}, "thresholds": cfg.drift.model_dump(mode="json"),
           "results": rows, "seconds": {"build": round(t_build, 1), "windows": round(t_windows, 1)}}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
