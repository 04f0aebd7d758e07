"""Issue 31's calibration table: judges on a realistic validation set AND on HaluEval, with paired CIs.

Sets (each judge judges every item of a set, or a seeded sample of ``--sample`` for slow judges):

``realistic``          a labelled-answers file (``--realistic``; default the kept set
                       ``data/judge_claims/validation_chroma.jsonl``): long RAG answers over documents the
                       judges' training never saw, every one reviewed (the construction label beside it);
``halueval_grounded``  the judge stage's grounded evaluation items (HaluEval QA, shared dev);
``halueval_general``   the judge stage's general held-out items (no context: claim-level judges n/a).

Per judge and set: accuracy, F1 of the hallucinated class and Cohen's kappa with 95% bootstrap CIs,
no-verdict counts, span-level precision/recall/F1 where the set labels spans, the share of inputs that
needed more than one evidence window (claim-level) or were longer than the model's input (whole-answer
cross-encoder, cut), seconds per item (judgments read from lab's judgment cache included: the cost of
a judge is ``judge_cost.py``'s to measure); the kappa and accuracy difference against ``--default`` on the
same items (paired bootstrap); ``flag``: a judge at or above the agreement bar on one set and below it
on another. On the realistic set also the shortcut diagnostic (:mod:`lab.judge.shortcuts`: equal-length
pairs, paraphrase pairs, the veto).

    python benchmarks/judge_realistic.py --models results/judge_eval/models /tmp/claim-models \
        --judges claims:claim-support-cross-encoder faithfulness-cross-encoder lexical claims:lexical majority \
        --default claims:claim-support-cross-encoder --out benchmarks/results/judge_realistic.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
REALISTIC = ROOT / "data" / "judge_claims" / "validation_chroma.jsonl"


def merged_models(folders: list[Path]) -> Path:
    """One folder of links to every model folder of ``folders`` (the catalog reads one models folder)."""
    out = Path(tempfile.mkdtemp(prefix="lab-judge-models-"))
    for folder in folders:
        for model in sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()):
            if not (out / model.name).exists():
                (out / model.name).symlink_to(model.resolve())
    return out


def window_share(judge: Any, items: list[Any]) -> dict[str, Any]:
    """Claim-level: the share of answers with a claim whose evidence needed several windows, from the
    judge's own plan (so a judgment read from the cache counts too); a whole-answer cross-encoder: the
    share of inputs longer than its input (cut silently)."""
    if hasattr(judge, "plan"):
        plans = [judge.plan(i) for i in items]
        planned = [p for p in plans if not isinstance(p, str)]
        multi = sum(any(len(w) > 1 for w in p[1]) for p in planned)
        return {"multi_window_share": multi / len(planned) if planned else None, "unplannable": len(plans) - len(planned)}
    if hasattr(judge, "_load") and items and items[0].context is not None:
        from lab.judge.trained import pair_text

        model = judge._load()
        hints = bool(judge.meta.get("settings", {}).get("lexical_hints"))
        sizes = [len(model.tokenizer(*pair_text(i, judge.task, lexical_hints=hints), verbose=False)["input_ids"])
                 for i in items]
        return {"inputs_over_max_length_share": sum(s > model.max_seq_length for s in sizes) / len(sizes),
                "max_length": model.max_seq_length}
    return {}


def score_set(set_name: str, items: list[Any], judges: dict[str, Any], default: str, args: argparse.Namespace,
              shortcuts: Any = None) -> list[dict[str, Any]]:
    """Every judge on ``items`` (see the module docstring); the rows of one set."""
    from lab.judge.calibrate import as_input, span_agreement
    from lab.judge.shortcuts import shortcut_report
    from lab.metrics.agreement import agreement_report, paired_difference

    rows, verdicts = [], {}
    for name, judge in judges.items():
        chosen = items
        if name in args.slow and len(items) > args.sample:
            chosen = random.Random(args.seed).sample(items, args.sample)
        t0 = time.perf_counter()
        got = judge.judge([as_input(i) for i in chosen])
        seconds = time.perf_counter() - t0
        scored = [(i, j) for i, j in zip(chosen, got, strict=True) if j.verdict is not None]
        row: dict[str, Any] = {"set": set_name, "judge": name, "n": len(chosen), "n_scored": len(scored),
                               "no_verdict": len(chosen) - len(scored), "sampled": chosen is not items,
                               "seconds_per_item": seconds / max(1, len(chosen)),
                               "errors": sorted({j.error_kind or j.error for j in got if j.verdict is None})[:5]}
        if scored and len({i.label for i, _ in scored}) == 2:
            rep = agreement_report([i.label for i, _ in scored], [int(j.verdict) for _, j in scored],
                                   n_resamples=args.n_resamples, seed=args.seed)
            row.update({k: rep[k] for k in ("accuracy", "accuracy_ci", "f1", "f1_ci", "kappa", "kappa_ci",
                                            "confusion")})
        row["span_level"] = span_agreement(chosen, got)
        row.update(window_share(judge, [as_input(i) for i in chosen]))
        if shortcuts is not None and name in args.slow:   # the diagnostic judges every answer of the file
            row["shortcuts"] = {"vetoed": None, "not_run": "a slow judge, sampled: the diagnostic would judge "
                                                           "every answer of the set"}
        elif shortcuts is not None and name != "majority":
            rep = shortcut_report(judge, shortcuts)
            row["shortcuts"] = {k: rep[k] for k in ("separation", "length_rho", "paraphrase_flags", "flag_rate",
                                                    "vetoed", "veto_reasons", "n_equal_length_pairs",
                                                    "n_paraphrase_pairs")}
        verdicts[name] = {i.id: int(j.verdict) for i, j in scored}
        rows.append(row)
    base = verdicts.get(default)
    for row in rows:
        if base is None or row["judge"] == default:
            continue
        common = [i for i in items if i.id in base and i.id in verdicts[row["judge"]]]
        if len({i.label for i in common}) < 2:
            continue
        labels = [i.label for i in common]
        a = [base[i.id] for i in common]
        b = [verdicts[row["judge"]][i.id] for i in common]
        row["default_minus_this"] = {s: paired_difference(labels, a, b, statistic=s, n_resamples=args.n_resamples,
                                                          seed=args.seed) for s in ("kappa", "accuracy")}
        row["default_minus_this"]["n"] = len(common)
    return rows


def flags(rows: list[dict[str, Any]], bar: float) -> dict[str, str]:
    """A judge at or above ``bar`` (kappa) on one set and below it on another."""
    by: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("kappa") is not None:
            by.setdefault(r["judge"], {})[r["set"]] = r["kappa"]
    out = {}
    for judge, sets in by.items():
        passed = sorted(s for s, k in sets.items() if k >= bar)
        failed = sorted(s for s, k in sets.items() if k < bar)
        if passed and failed:
            out[judge] = f"kappa >= {bar:g} on {', '.join(passed)} but below on {', '.join(failed)}"
    return out


def table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows flattened to one shape (every key in every row, None where it does not apply): the
    calibration table the documentation shows."""
    out = []
    for r in rows:
        vs = (r.get("default_minus_this") or {}).get("kappa") or {}
        span = r.get("span_level") or {}
        out.append({"set": r["set"], "judge": r["judge"], "n": r.get("n"), "sampled": r.get("sampled"),
                    "accuracy": r.get("accuracy"), "accuracy_ci": r.get("accuracy_ci"), "f1": r.get("f1"),
                    "f1_ci": r.get("f1_ci"), "kappa": r.get("kappa"), "kappa_ci": r.get("kappa_ci"),
                    "kappa_default_minus_this": vs.get("diff"), "kappa_default_minus_this_ci": vs.get("diff_ci"),
                    "span_f1": span.get("f1"), "multi_window_share": r.get("multi_window_share"),
                    "over_max_length_share": r.get("inputs_over_max_length_share"),
                    "vetoed": (r.get("shortcuts") or {}).get("vetoed"), "not_applicable": r.get("not_applicable")})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--realistic", type=Path, nargs="+", default=[REALISTIC])
    ap.add_argument("--models", type=Path, nargs="+", default=[ROOT / "results" / "judge_eval" / "models"])
    ap.add_argument("--judges", nargs="+", required=True)
    ap.add_argument("--default", required=True, help="the judge every other is compared with (paired)")
    ap.add_argument("--slow", nargs="*", default=[], help="judges run on a seeded sample of --sample items per set")
    ap.add_argument("--sample", type=int, default=40)
    ap.add_argument("--sets", nargs="+", default=["realistic", "halueval_grounded", "halueval_general"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--n-resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shared", action="store_true", help="label the timings: other work shared the cores")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)

    from lab.config import load_section
    from lab.data.halueval import read_judged
    from lab.errors import ConfigError
    from lab.io import write_json
    from lab.judge.catalog import make_judge, task_sets
    from lab.judge.shortcuts import read_shortcut_set

    root = args.params.resolve().parent
    cfg = load_section("judge_eval", args.params, check_paths=False)
    models = merged_models(args.models)
    sets: dict[str, tuple[str, list[Any]]] = {}
    if "realistic" in args.sets:
        sets["realistic"] = ("grounded", [i for p in args.realistic for i in read_judged(p, fmt="answers").items])
    if "halueval_grounded" in args.sets:
        sets["halueval_grounded"] = ("grounded", task_sets(cfg, root, "grounded").evaluation)
    if "halueval_general" in args.sets:
        sets["halueval_general"] = ("general", task_sets(cfg, root, "general").evaluation)
    doc: dict[str, Any] = {"benchmark": "judge_realistic", "complete": False, "default": args.default,
                           "agreement_bar": cfg.agreement_bar, "sample_for_slow_judges": args.sample,
                           "slow": args.slow, "realistic_files": [str(p.relative_to(ROOT) if p.is_relative_to(ROOT)
                                                                      else p.name) for p in args.realistic],
                           "sizes": {k: len(v[1]) for k, v in sets.items()}, "rows": [],
                           "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                           "cores_shared": args.shared, "command": "python " + " ".join(sys.argv)}
    summary = args.realistic[0].with_name(args.realistic[0].name.removesuffix(".jsonl") + ".summary.json")
    doc["realistic_summary"] = json.loads(summary.read_text(encoding="utf-8")) if summary.is_file() else None
    for set_name, (task, items) in sets.items():
        judges = {}
        for name in args.judges:
            try:
                judge = make_judge(name, task, cfg, root, models_dir=models)
            except ConfigError as exc:   # a claim-level judge on a set without context: n/a, said so
                doc["rows"].append({"set": set_name, "judge": name, "not_applicable": str(exc)})
                continue
            other = getattr(judge, "task", task) if hasattr(judge, "meta") else task
            if other != task or (name == "lexical" and task != "grounded"):
                doc["rows"].append({"set": set_name, "judge": name, "not_applicable":
                                    f"a {'grounded' if name == 'lexical' else other} judge; this set is {task}"})
                continue
            judges[name] = judge
        rate = sum(i.label for i in items) / len(items)
        doc.setdefault("majority_class_accuracy", {})[set_name] = max(rate, 1 - rate)
        shortcuts = read_shortcut_set(args.realistic[0]) if set_name == "realistic" else None
        doc["rows"] += score_set(set_name, items, judges, args.default, args, shortcuts)
        write_json(args.out, doc)   # atomically, after each set
        print(f"{set_name}: done", flush=True)
    doc["flags"] = flags(doc["rows"], cfg.agreement_bar)
    doc["table"] = table(doc["rows"])
    doc["complete"] = True
    write_json(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
