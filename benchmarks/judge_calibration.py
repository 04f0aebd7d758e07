"""The calibration table of judges too slow for the demo stage, beside the baselines, on the same
held-out items as the ``judge_eval`` stage (the sets of ``params.yaml``'s ``judge_eval`` section).

Each judge (any name ``lab judge calibrate --judge`` takes: ``prompted:MODEL``, ``ragas:MODEL``, a
trained judge, ``lexical``, ``majority``, ``default``) is run per task on a seeded sample of the
validation items (a prompted judge's threshold on P(positive) is chosen there) and of the evaluation
items (reported: accuracy, F1, kappa with 95% bootstrap CIs, parse failures, seconds per item),
the baselines (majority, length, lexical) on the same sample beside it. The sample size is in the
output (``n``). With ``--diagnostic``, grounded judges are also measured on a sample of the
length-balanced diagnostic set (``length_balanced``; :mod:`lab.judge.counterfactual`).

    python benchmarks/judge_calibration.py --sample 150 \
        --judges default prompted:qwen2.5-coder-0.5b-instruct prompted:qwen2.5-coder-1.5b-instruct \
        --ragas-judges ragas:qwen2.5-coder-0.5b-instruct --ragas-sample 20 \
        --out benchmarks/results/judge_calibration.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--judges", nargs="+", default=["default", "prompted:qwen2.5-coder-0.5b-instruct"])
    ap.add_argument("--ragas-judges", nargs="*", default=[], help="ragas:MODEL judges (grounded task only)")
    ap.add_argument("--tasks", nargs="+", default=["grounded", "general"])
    ap.add_argument("--sample", type=int, default=150, help="validation and evaluation items per task")
    ap.add_argument("--ragas-sample", type=int, default=20)
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "judge_calibration.json"))
    ap.add_argument("--shared", action="store_true", help="label the figures: other work shared the cores")
    ap.add_argument("--diagnostic", action="store_true",
                    help="grounded: also each judge on the length-balanced diagnostic sets (lab.judge.counterfactual)")
    args = ap.parse_args()

    from lab.config import load_section
    from lab.io import write_json
    from lab.judge.catalog import fitted_lexical, task_sets
    from lab.stage_outputs import judge_by_name
    from lab.studies.judge import calibrate_judge, diagnose_judge

    root = Path(args.params).resolve().parent
    cfg = load_section("judge_eval", args.params, check_paths=False)
    lexical = fitted_lexical(cfg, root)
    rows = []
    for task in args.tasks:
        sets = task_sets(cfg, root, task)
        names = ["majority", "length", *(["lexical"] if task == "grounded" else []), *args.judges]
        jobs = [(n, args.sample) for n in names]
        if task == "grounded":
            jobs += [(n, args.ragas_sample) for n in args.ragas_judges]
            jobs += [("lexical", args.ragas_sample)]      # the baseline on the ragas sample too
        for name, sample in jobs:
            judge = judge_by_name(name, task, root, args.params)
            t0 = time.perf_counter()
            res = calibrate_judge(judge, sets, cfg, sample=sample, lexical=lexical if task == "grounded" else None)
            diag = None
            if args.diagnostic and task == "grounded" and not name.startswith("ragas:"):
                diag = diagnose_judge(judge, sets, cfg, sample=sample, lexical=lexical, validation=False)[1]
            seconds = time.perf_counter() - t0
            rep = res.evaluation
            row = {"task": task, "judge": judge.name, "kind": judge.kind, "rubric": judge.rubric_id,
                   "n": rep["n"], "n_scored": rep["n_scored"], "validation_n": res.validation["n"],
                   "threshold": res.threshold, **{k: rep.get(k) for k in (
                       "accuracy", "accuracy_ci", "f1", "f1_ci", "kappa", "kappa_ci", "parse_failures",
                       "generation_failures", "cache_hits", "majority_baseline_accuracy", "lexical_baseline_accuracy",
                       "below_bar", "confusion")},
                   "seconds": seconds, "seconds_per_item": seconds / max(1, rep["n"] + res.validation["n"]
                                                                        + (diag["n"] if diag else 0))}
            if diag:
                row["length_balanced"] = {k: diag.get(k) for k in ("n", "n_scored", "accuracy", "accuracy_ci", "kappa",
                                                                   "kappa_ci", "parse_failures", "lexical_baseline")}
            rows.append(row)
            write_json(args.out, _doc(rows, args, complete=False))   # kept row by row: a stopped run loses nothing
            print(json.dumps({k: row[k] for k in ("task", "judge", "n", "accuracy", "kappa", "parse_failures",
                                                   "lexical_baseline_accuracy", "seconds")}), flush=True)
            close = getattr(judge, "close", None)
            if close:
                close()
    write_json(args.out, _doc(rows, args, complete=True))
    print(f"wrote {args.out}")


def _doc(rows: list[dict], args: argparse.Namespace, *, complete: bool) -> dict:
    return {"benchmark": "judge_calibration", "complete": complete, "rows": rows, "sample": args.sample,
            "ragas_sample": args.ragas_sample, "params": str(args.params),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "cores_shared": bool(args.shared),
            "note": "items: a seeded sample of the judge_eval stage's validation (thresholds) and evaluation "
                    "(reported) items; cache_hits > 0 means judgments were reused from an earlier run"}


if __name__ == "__main__":
    main()
