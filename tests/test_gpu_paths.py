"""benchmarks/gpu_paths.py: its CPU-only smoke path runs lab's fine-tuning (checkpoint + resume) and
generation and writes its figures; asked for CUDA where there is none, it says so and exits 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_paths.py"


def test_cpu_smoke_run_writes_figures_and_passes_its_checks(tmp_path):
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny-random-llama", "--devices", "cpu",
                        "--cpu-steps", "8", "--gen-prompts", "8", "--max-length", "2048", "--out", str(out)],
                       check=False, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    lora = d["train"]["cpu"]["lora"]
    assert lora["resumed_from_step"] == 8 and lora["steps_after_resume"] == 16
    assert d["train"]["cpu"]["full"]["steps"] == 8 and d["train"]["cpu"]["full"]["s_per_step"] > 0
    assert d["generate"]["cpu-float32"]["tokens_out_per_round"] > 0
    assert all(d["checks"].values())


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_exits_2():
    r = subprocess.run([sys.executable, str(SCRIPT), "--model", "tiny-random-llama"],
                       check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "CUDA is not available" in r.stderr
