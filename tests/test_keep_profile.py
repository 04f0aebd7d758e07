"""scripts/keep_profile.py: copies a profile's outputs with their provenance, refuses mismatched ones."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "keep_profile.py"
FILES = ("metrics.json", "results.csv", "comparison.csv", "quality_vs_cost.csv", "predictions.jsonl",
         "finetune_comparison.html")


def _project(tmp_path: Path, lock_lr: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text("finetune_comparison:\n  model: m\n  training: {lr: 5.0e-5}\n")
    lock = {"schema": "2.0", "stages": {"finetune_comparison": {
        "cmd": "lab run x", "params": {"params.yaml": {"finetune_comparison": {"model": "m", "training": {"lr": lock_lr}}}}}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    out = tmp_path / "results" / "finetune_comparison"
    (out / "plots").mkdir(parents=True)
    for f in FILES:
        (out / f).write_text(f"{f}\n")
    (out / "results.csv").write_text(
        "arm,exact_match,f1,infer_s_per_question,tokens_per_s,skipped,train_s,train_peak_rss_mb\n"
        "zero_shot,0.01,0.03,0.5,8.0,,,\nlora,0.02,0.05,0.6,7.5,,590.2,4733.7\nqlora,,,,,QLoRA needs CUDA,,\n")
    (out / "comparison.csv").write_text(
        "arm,f1,f1_ci_low,f1_ci_high,n,diff_vs_zero_shot,diff_ci_low,diff_ci_high,p_value\n"
        "zero_shot,0.03,0.02,0.04,320,,,,\nlora,0.05,0.04,0.06,320,0.02,0.01,0.03,0.0012\n")
    (out / "plots" / "f1.png").write_bytes(b"png")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=tmp_path, check=True)
    return tmp_path


def _keep(root: Path, dest: str = "results/kept") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--name", "p1", "results/finetune_comparison", dest],
                          check=False, cwd=root, capture_output=True, text=True)


def test_keeps_outputs_and_provenance_and_replaces_an_old_copy(tmp_path):
    root = _project(tmp_path, "5e-05")   # dvc.lock's spelling of the same value
    (root / "results" / "kept").mkdir(parents=True)
    (root / "results" / "kept" / "stale.txt").write_text("old")
    r = _keep(root)
    assert r.returncode == 0, r.stderr
    kept = root / "results" / "kept"
    assert sorted(p.name for p in kept.iterdir()) == sorted([*FILES, "plots", "provenance.json", "table.md"])
    rows = (kept / "table.md").read_text().splitlines()
    assert rows[0] == "| arm | EM | F1 [95% CI] | F1 - zero_shot [95% CI] | half-width | p |"
    assert rows[2] == "| zero_shot | 0.010 | 0.030 [0.020, 0.040] | (base) | - | - |"
    assert rows[3] == "| lora | 0.020 | 0.050 [0.040, 0.060] | +0.020 [+0.010, +0.030] | 0.010 | 0.0012 |"
    assert rows[4].startswith("| qlora | skipped: QLoRA needs CUDA |")
    assert (kept / "plots" / "f1.png").read_bytes() == b"png"
    prov = json.loads((kept / "provenance.json").read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], check=True, cwd=root, capture_output=True, text=True).stdout.strip()
    assert prov["experiment"] == "p1" and prov["commit"] == head and prov["params"]["model"] == "m"
    assert [p.name for p in (root / "results").iterdir() if p.name.startswith(".")] == []   # no temp left


def test_refuses_outputs_of_other_params_and_missing_files(tmp_path):
    root = _project(tmp_path, "1e-04")
    r = _keep(root)
    assert r.returncode == 2 and "does not match params.yaml" in r.stderr
    assert not (root / "results" / "kept").exists()
    root2 = _project(tmp_path / "b", "5e-05")
    (root2 / "results" / "finetune_comparison" / "metrics.json").unlink()
    r = _keep(root2)
    assert r.returncode == 2 and "metrics.json" in r.stderr


def _keep_profile():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import keep_profile
    finally:
        sys.path.pop(0)
    return keep_profile


def test_the_table_shows_no_machine_dependent_figure(tmp_path):
    """Two runs that differ only in their timings give the same table: it is what a fresh clone's
    `make demo` must reproduce, so `make test` after it cannot fail on this machine's wall times."""
    kp = _keep_profile()
    root = _project(tmp_path, "5e-05")
    out = root / "results" / "finetune_comparison"
    before = kp.table_md(out / "results.csv", out / "comparison.csv")
    import pandas as pd

    df = pd.read_csv(out / "results.csv")
    for c in kp.TIMING_COLUMNS:
        if c in df.columns and pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c] * 3 + 1
    df.to_csv(out / "results.csv", index=False)
    assert kp.table_md(out / "results.csv", out / "comparison.csv") == before
    for c in ("train", "RSS", "s/question", "tokens/s", "cost"):
        assert c not in before


def test_timings_come_from_the_timings_file_or_from_results_csv_before_the_split(tmp_path):
    kp = _keep_profile()
    root = _project(tmp_path, "5e-05")
    out = root / "results" / "finetune_comparison"
    old = kp.timings_md(out).splitlines()   # written before the split: the columns of results.csv
    assert old[0] == "| arm | train_s | train_peak_rss_mb | infer_s_per_question | tokens_per_s |"
    assert old[3] == "| lora | 590.20 | 4,733.70 | 0.60 | 7.50 |"
    (out / kp.TIMINGS_FILE).write_text("arm,train_s,tokens_per_s\nzero_shot,,8.0\nlora,12.5,7.5\n")
    new = kp.timings_md(out).splitlines()
    assert new == ["| arm | train_s | tokens_per_s |", "| --- | --- | --- |", "| zero_shot | - | 8.00 |",
                   "| lora | 12.50 | 7.50 |"]
    (out / kp.TIMINGS_FILE).write_text("arm,f1\nzero_shot,0.1\n")
    assert kp.timings_md(out).startswith("(no timing figures in timings.csv)")


def test_a_kept_profile_carries_its_timings_file(tmp_path):
    kp = _keep_profile()
    root = _project(tmp_path, "5e-05")
    (root / "results" / "finetune_comparison" / kp.TIMINGS_FILE).write_text("arm,train_s\nlora,1.0\n")
    r = _keep(root)
    assert r.returncode == 0, r.stderr
    assert (root / "results" / "kept" / kp.TIMINGS_FILE).read_text() == "arm,train_s\nlora,1.0\n"


def test_keeps_a_chunking_study_profile_without_a_fine_tune_table(tmp_path):
    kp = _keep_profile()
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "params.yaml").write_text("chunking_study:\n  benchmarks: [{name: cuad}]\n")
    lock = {"schema": "2.0", "stages": {"chunking_study": {
        "cmd": "lab run x", "params": {"params.yaml": {"chunking_study": {"benchmarks": [{"name": "cuad"}]}}}}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    out = tmp_path / "results" / "chunking_study"
    (out / "plots").mkdir(parents=True)
    for f in kp.STAGE_FILES["chunking_study"]:
        (out / f).write_text(f"{f}\n")
    (out / "plots" / "iou_cuad.png").write_bytes(b"png")
    (out / "chunking_study.ipynb").write_text("{}")   # the executed notebook is not part of a profile
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=tmp_path, check=True)
    r = subprocess.run([sys.executable, str(SCRIPT), "--stage", "chunking_study", "--name", "chunking-cuad",
                        "results/chunking_study", "results/chunking_cuad"],
                       check=False, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    kept = tmp_path / "results" / "chunking_cuad"
    assert sorted(p.name for p in kept.iterdir()) == sorted([*kp.STAGE_FILES["chunking_study"], "plots",
                                                             "provenance.json"])
    assert json.loads((kept / "provenance.json").read_text())["stage"] == "chunking_study"
    (out / "metrics.json").unlink()
    r = subprocess.run([sys.executable, str(SCRIPT), "--stage", "chunking_study", "--name", "chunking-cuad",
                        "results/chunking_study", "results/chunking_cuad"],
                       check=False, cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 2 and "metrics.json" in r.stderr and "make chunking-cuad" in r.stderr
