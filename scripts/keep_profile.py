"""Keep a stage profile's results beside the demo's, in a folder committed to git.

``dvc exp run`` of a profile (``make finetune-qwen05``, ``make chunking-cuad-full``) leaves its outputs
in the workspace's stage folder (``results/finetune_comparison/``, ``results/chunking_study/``), where
the next ``dvc repro`` of the demo replaces them. This copies the study's tables, plots and report to
``DEST`` with ``provenance.json``: the experiment's name, the commit it ran on, the stage's params as
run and its ``dvc.lock`` entry (the hashes of every dependency). Written to a temporary folder first
and renamed into place, so an interrupted copy never leaves half a profile.

    python scripts/keep_profile.py --name finetune-qwen05 results/finetune_comparison results/finetune_qwen05
    python scripts/keep_profile.py --stage chunking_study --name chunking-cuad-full \
        results/chunking_study results/chunking_cuad_full
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
from lab.studies.finetune import TIMING_COLUMNS as STUDY_TIMINGS

#: The files each stage with a profile must have written (its report is ``<stage>.html``); the
#: fine-tune comparison's profile also gets ``table.md`` (:func:`table_md`).
STAGE_FILES: dict[str, tuple[str, ...]] = {
    "finetune_comparison": ("metrics.json", "results.csv", "comparison.csv", "quality_vs_cost.csv",
                            "predictions.jsonl", "finetune_comparison.html"),
    "chunking_study": ("metrics.json", "results.csv", "results_per_corpus.csv", "recall_precision_k5.csv",
                       "chunking_study.html"),
}
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


#: The machine-dependent columns of the fine-tune results (wall times, throughput, memory and the costs
#: computed from them), as the study names them, plus the arm ``relative_cost`` is relative to. They
#: differ on every machine and every run, so no table that must reproduce (nor any test) shows them;
#: :func:`timings_md` renders them apart, labelled as one run's figures.
TIMING_COLUMNS: tuple[str, ...] = (*STUDY_TIMINGS, "relative_cost_base")
#: Where the stage keeps those figures once they are split from ``results.csv`` (older runs: in it).
TIMINGS_FILE = "timings.csv"


def table_md(results_csv: Path, comparison_csv: Path) -> str:
    """The profile's table as Markdown, derived from the stage's two CSVs (never typed by hand):
    per arm EM, F1 with its 95% CI, the paired F1 difference against the base with its CI,
    half-width and p-value; skipped arms with their reason. Only figures that reproduce exactly
    on any machine: none of :data:`TIMING_COLUMNS`, even when ``results_csv`` holds them."""
    import pandas as pd

    res = pd.read_csv(results_csv).set_index("arm")
    cmp = pd.read_csv(comparison_csv).set_index("arm")
    diff = next(c for c in cmp.columns if c.startswith("diff_vs_"))
    base = diff.removeprefix("diff_vs_")

    header = f"| arm | EM | F1 [95% CI] | F1 - {base} [95% CI] | half-width | p |"
    lines = [header, "|" + " --- |" * 6]
    for arm, r in res.iterrows():
        if isinstance(r.get("skipped"), str) and r["skipped"]:
            lines.append(f"| {arm} | skipped: {r['skipped']} |" + " |" * 4)
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
                     f"| {d} | {hw} | {p} |")
    return "\n".join(lines) + "\n"


def timings_md(folder: Path) -> str:
    """The machine-dependent figures of the run kept in ``folder`` (:data:`TIMING_COLUMNS` found in
    :data:`TIMINGS_FILE`, else in ``results.csv``) as Markdown: one machine's measurement, for the
    history, never compared by a test."""
    import pandas as pd

    src = folder / TIMINGS_FILE if (folder / TIMINGS_FILE).is_file() else folder / "results.csv"
    df = pd.read_csv(src)
    cols = [c for c in TIMING_COLUMNS if c in df.columns]
    if not cols:
        return f"(no timing figures in {src.name})\n"
    lines = ["| arm | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 1)]
    for _, r in df.iterrows():
        cells = ["-" if pd.isna(r[c]) else (format(r[c], ",.2f") if isinstance(r[c], float) else str(r[c]))
                 for c in cols]
        lines.append(f"| {r['arm']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path, help="the stage's output folder in the workspace")
    ap.add_argument("dest", type=Path, help="the folder to keep (replaced if it exists)")
    ap.add_argument("--name", required=True, help="the experiment's name (dvc exp run -n)")
    ap.add_argument("--stage", default=STAGE, choices=sorted(STAGE_FILES), help="the profile's DVC stage")
    args = ap.parse_args(argv)
    root = Path.cwd()
    stage, files = args.stage, STAGE_FILES[args.stage]
    missing = [f for f in files if not (args.src / f).is_file()]
    if missing:
        print(f"keep_profile: {args.src} lacks {', '.join(missing)}: run the profile first "
              f"(make {args.name})", file=sys.stderr)
        return 2
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))["stages"].get(stage)
    params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))[stage]
    if lock is None or _norm(lock.get("params", {}).get("params.yaml", {}).get(stage)) != _norm(params):
        print(f"keep_profile: dvc.lock's {stage} entry does not match params.yaml: the outputs in {args.src} "
              "may not be this profile's; rerun it", file=sys.stderr)
        return 2
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    provenance = {"experiment": args.name, "commit": commit, "stage": stage, "params": params,
                  "dvc_lock": lock, "kept_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "reproduce": f"git checkout {commit} && make {args.name}"}
    with atomic_dir(args.dest) as tmp:   # replaces an earlier kept folder only once the new one is whole
        for f in files:
            shutil.copy2(args.src / f, tmp / f)
        if (args.src / TIMINGS_FILE).is_file():   # the machine-dependent figures, once split from results.csv
            shutil.copy2(args.src / TIMINGS_FILE, tmp / TIMINGS_FILE)
        if (args.src / "plots").is_dir():
            shutil.copytree(args.src / "plots", tmp / "plots")
        if stage == "finetune_comparison":
            (tmp / "table.md").write_text(table_md(tmp / "results.csv", tmp / "comparison.csv"), encoding="utf-8")
        write_json(tmp / "provenance.json", provenance)
    print(f"keep_profile: {args.name} kept in {args.dest} (commit {commit[:8]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
