"""Keep a fine-tune profile's results beside the demo's, in a folder committed to git.

``dvc exp run`` of a profile (``make finetune-qwen05``) leaves its outputs in the workspace's
``results/finetune_comparison/``, where the next ``dvc repro`` of the demo replaces them. This copies
the study's tables, plots, report and predictions to ``DEST`` with ``provenance.json``: the
experiment's name, the commit it ran on, the stage's params as run and its ``dvc.lock`` entry (the
hashes of every dependency). Written to a temporary folder first and renamed into place, so an
interrupted copy never leaves half a profile.

    python scripts/keep_profile.py --name finetune-qwen05 results/finetune_comparison results/finetune_qwen05
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import yaml

from lab.io import atomic_dir, write_json

FILES = ("metrics.json", "results.csv", "comparison.csv", "quality_vs_cost.csv", "predictions.jsonl",
         "finetune_comparison.html")
STAGE = "finetune_comparison"


def _norm(x: object) -> object:
    """Params as values: PyYAML reads ``5e-05`` (dvc.lock's spelling) as a string, ``5.0e-5`` as a float."""
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def table_md(results_csv: Path, comparison_csv: Path) -> str:
    """The profile's table as Markdown, derived from the stage's two CSVs (never typed by hand):
    per arm EM, F1 with its 95% CI, the paired F1 difference against the base with its CI,
    half-width and p-value, and the costs; skipped arms with their reason."""
    import pandas as pd

    res = pd.read_csv(results_csv).set_index("arm")
    cmp = pd.read_csv(comparison_csv).set_index("arm")
    diff = next(c for c in cmp.columns if c.startswith("diff_vs_"))
    base = diff.removeprefix("diff_vs_")

    def num(x: object, fmt: str) -> str:
        return "-" if pd.isna(x) else format(x, fmt)

    header = (f"| arm | EM | F1 [95% CI] | F1 - {base} [95% CI] | half-width | p | train s | peak RSS MB (train) "
              "| s/question | tokens/s |")
    lines = [header, "|" + " --- |" * 10]
    for arm, r in res.iterrows():
        if isinstance(r.get("skipped"), str) and r["skipped"]:
            lines.append(f"| {arm} | skipped: {r['skipped']} |" + " |" * 8)
            continue
        c = cmp.loc[arm]
        if pd.isna(c[diff]):
            d = "(base)"
            hw = p = "-"
        else:
            d = f"{c[diff]:+.3f} [{c['diff_ci_low']:+.3f}, {c['diff_ci_high']:+.3f}]"
            hw = f"{(c['diff_ci_high'] - c['diff_ci_low']) / 2:.3f}"
            p = f"{c['p_value']:.3g}"
        lines.append(f"| {arm} | {r['exact_match']:.3f} | {c['f1']:.3f} [{c['f1_ci_low']:.3f}, {c['f1_ci_high']:.3f}] "
                     f"| {d} | {hw} | {p} | {num(r.get('train_s'), '.0f')} | {num(r.get('train_peak_rss_mb'), '.0f')} "
                     f"| {r['infer_s_per_question']:.2f} | {r['tokens_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the stage's output folder in the workspace")
    ap.add_argument("dest", type=Path, help="the folder to keep (replaced if it exists)")
    ap.add_argument("--name", required=True, help="the experiment's name (dvc exp run -n)")
    args = ap.parse_args(argv)
    root = Path.cwd()
    missing = [f for f in FILES if not (args.src / f).is_file()]
    if missing:
        print(f"keep_profile: {args.src} lacks {', '.join(missing)}: run the profile first "
              f"(make {args.name})", file=sys.stderr)
        return 2
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))["stages"].get(STAGE)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))[STAGE]
    if lock is None or _norm(lock.get("params", {}).get("params.yaml", {}).get(STAGE)) != _norm(params):
        print(f"keep_profile: dvc.lock's {STAGE} entry does not match params.yaml: the outputs in {args.src} "
              "may not be this profile's; rerun it", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    provenance = {"experiment": args.name, "commit": commit, "stage": STAGE, "params": params,
                  "dvc_lock": lock, "kept_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "reproduce": f"git checkout {commit} && make {args.name}"}
    with atomic_dir(args.dest) as tmp:   # replaces an earlier kept folder only once the new one is whole
        for f in FILES:
            shutil.copy2(args.src / f, tmp / f)
        if (args.src / "plots").is_dir():
            shutil.copytree(args.src / "plots", tmp / "plots")
        (tmp / "table.md").write_text(table_md(tmp / "results.csv", tmp / "comparison.csv"), encoding="utf-8")
        write_json(tmp / "provenance.json", provenance)
    print(f"keep_profile: {args.name} kept in {args.dest} (commit {commit[:8]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
