"""What a fine-tune comparison profile costs on this machine, measured on a slice and extrapolated.

Runs every arm of two profiles in the same run — the demo profile of ``params.yaml`` (the
baseline) and an overrides profile such as ``experiments/finetune_qwen05.yaml`` — on a slice:
``--questions`` held-out questions and ``--steps`` training steps per trained arm (training and
answers go to a scratch folder, never into ``results/``). From the slice it reports, per arm,
seconds per answered question and per training step, and extrapolates each profile's full
fine-tune stage: questions x s/question + steps x s/step (+ model loads). The ratio of the two
estimates is the profile's cost relative to the demo.

Training steps on the slice use the profile's batch size and sequence lengths, but s/step is the
arm's whole training wall time over the slice's steps: it includes the trainer's start-up (spawn,
model load, first-step allocation), so the estimates are UPPER bounds. Measured 2026-12-02 with
3 steps: the demo profile was estimated at 3,314 s where its cold run took 1,317 s (2.5x over).
A slope over two step counts would remove the start-up; not done yet.

    python benchmarks/finetune_profile_cost.py experiments/finetune_qwen05.yaml \
        --out benchmarks/results/finetune_profile_cost_qwen05.json
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _measure(cfg: Any, questions: int, steps: int, scratch: Path) -> dict[str, Any]:
    from lab.studies.finetune import TRAINED, run_comparison

    full_q, full_steps = cfg.n_heldout, cfg.training.max_steps
    sliced = cfg.model_copy(update={"n_heldout": questions, "out_dir": str(scratch),
                                    "training": cfg.training.model_copy(update={
                                        "max_steps": steps, "save_every": steps, "eval_every": steps})})
    t0 = time.perf_counter()
    results, _ = run_comparison(sliced, ROOT, progress=False)
    wall = time.perf_counter() - t0
    arms, estimate = {}, 0.0
    for r in results:
        if r.skipped:
            arms[r.arm] = {"skipped": r.skipped}
            continue
        s_q = r.costs["infer_s_per_question"]
        s_step = r.costs.get("train_s", 0.0) / steps if r.arm in TRAINED else 0.0
        full = s_q * full_q + s_step * full_steps
        arms[r.arm] = {"s_per_question": round(s_q, 3), "s_per_train_step": round(s_step, 2) if s_step else None,
                       "estimated_full_s": round(full)}
        estimate += full
    return {"model": cfg.model, "full_questions": full_q, "full_steps": full_steps, "slice_questions": questions,
            "slice_steps": steps, "slice_wall_s": round(wall), "arms": arms, "estimated_full_stage_s": round(estimate),
            "estimated_full_stage_h": round(estimate / 3600, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("profile", type=Path, help="overrides file (params.yaml sections and the keys they change)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--questions", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import json

    from lab.config import load_section, read_params
    from lab.io import write_json

    over = read_params(args.profile).get("finetune_comparison") or {}
    flat: dict[str, Any] = {}
    for k, v in over.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    demo = load_section("finetune_comparison", args.params)
    profile = load_section("finetune_comparison", args.params, overrides=flat)
    with tempfile.TemporaryDirectory(prefix="lab-profile-cost-") as tmp:
        base = _measure(demo, args.questions, args.steps, Path(tmp) / "demo")
        prof = _measure(profile, args.questions, args.steps, Path(tmp) / "profile")
    report = {"profile": str(args.profile), "overrides": over, "demo": base, "profile_estimate": prof,
              "ratio_profile_over_demo": round(prof["estimated_full_stage_s"] / max(base["estimated_full_stage_s"], 1), 2),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "note": "a slice extrapolated; other work may share the cores"}}
    print(json.dumps(report, indent=2))
    if args.out:
        write_json(args.out, report, indent=2)


if __name__ == "__main__":
    main()
