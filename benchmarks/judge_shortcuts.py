"""Length and style are not evidence: judges on the equal-length and paraphrase pairs of a file of
``lab judge make-data`` (:mod:`lab.judge.shortcuts`), beside the data's own counts.

Each judge (any name ``lab judge calibrate --judge`` takes: ``length``, ``lexical``,
``claims:lexical``, a trained judge, ``prompted:MODEL``, ``default``) is run on every answer of the
pairs; per judge: ``separation`` (planted error vs its faithful twin of the same length),
``length_rho`` (within-label Spearman of score and length), ``paraphrase_flags`` (paraphrase vs
original), each with a bootstrap CI, the flag rates, and whether the veto fires and why. Also each
judge's agreement with the file's labels (``lab.judge.calibrate.calibrate``: accuracy, kappa, span
level) on all its records.

    python benchmarks/judge_shortcuts.py --data benchmarks/results/judge_training_qwen05.jsonl \\
        --judges length lexical claims:lexical --shared --out benchmarks/results/judge_shortcuts_qwen05.json
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
    ap.add_argument("--data", required=True, help="a file of `lab judge make-data`")
    ap.add_argument("--judges", nargs="+", default=["length", "lexical", "claims:lexical"])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--n-resamples", type=int, default=2000)
    ap.add_argument("--shared", action="store_true", help="label the times: other work shared the cores")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    from lab.config import load_section
    from lab.data.halueval import read_judged
    from lab.io import write_json
    from lab.judge.calibrate import calibrate
    from lab.judge.catalog import fitted_lexical
    from lab.judge.shortcuts import VetoRule, read_shortcut_set, shortcut_report
    from lab.stage_outputs import judge_by_name

    root = Path(args.params).resolve().parent
    cfg = load_section("judge_eval", args.params, check_paths=False)
    lexical = fitted_lexical(cfg, root)
    items = read_judged(args.data, fmt="answers").items
    pairs = read_shortcut_set(args.data)
    stats_file = Path(args.data).with_name(Path(args.data).name.removesuffix(".jsonl") + ".stats.json")
    rule = VetoRule(n_resamples=args.n_resamples)
    rows = []
    for name in args.judges:
        judge = judge_by_name(name, "grounded", root, args.params)
        t0 = time.perf_counter()
        report = shortcut_report(judge, pairs, rule)
        agreement = calibrate(judge, items, lexical=lexical, n_resamples=args.n_resamples)
        seconds = time.perf_counter() - t0
        rows.append({"judge": judge.name, "shortcuts": report, "seconds": round(seconds, 1),
                     "agreement": {k: agreement.get(k) for k in ("n", "n_scored", "accuracy", "accuracy_ci", "kappa",
                                                                 "kappa_ci", "f1", "span_level", "confusion")}})
        print(json.dumps({"judge": judge.name, "vetoed": report["vetoed"], "why": report["veto_reasons"],
                          "separation": report["separation"]["mean"], "length_rho": report["length_rho"]["rho"],
                          "paraphrase_flags": report["paraphrase_flags"]["mean"],
                          "accuracy": agreement.get("accuracy"), "kappa": agreement.get("kappa")}), flush=True)
    doc = {"benchmark": "judge_shortcuts", "data": str(args.data), "rows": rows,
           "data_stats": json.loads(stats_file.read_text()) if stats_file.is_file() else None,
           "pairs": {"equal_length": len(pairs.equal_length), "paraphrase": len(pairs.paraphrase),
                     "unequal_length_left_out": pairs.unequal},
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "cores_shared": bool(args.shared)}
    write_json(args.out, doc)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
