"""lab's CUDA paths (LoRA and full fine-tuning with checkpoint and resume, batched generation)
against the same machine's CPU, in one run.

The README says training and generation use CUDA when there is a GPU (``device: auto``). CI has no
GPU, so this script is how that claim is checked, on a machine that has one. The model is a
randomly initialised model of a real architecture: the config and tokenizer of a model-store model
(default Qwen2.5-Coder-0.5B-Instruct, the fine-tune profile's model), so its cost per step and per
token is that architecture's while its weights (and answers) are noise. That keeps the run free of
weight files, which a GPU machine without network access may not have.

For each device (``cuda``, then ``cpu`` as the baseline) it runs lab's own ``finetune()``:

* LoRA to ``--steps`` with a checkpoint half-way, then once more with twice the steps, which must
  resume from the last checkpoint (``resumed_from_step``) and go on; the loss must fall;
* full fine-tuning for ``--steps``;

and ``TransformersBackend.generate`` at batch ``--gen-batch-size`` (float32 on both devices, and
bfloat16 on CUDA; after a warm-up over every batch shape, the median of 3 rounds). Reported per
device: seconds per optimizer step (``finetune()``'s wall time over its steps, model loading
included, so short runs overstate it), peak memory (CUDA: the allocator's peak; CPU: the process's
peak RSS), mean training loss of the first and the last quarter of the steps, generated tokens/s;
and the ratios CPU/CUDA. The CPU baseline runs fewer steps (``--cpu-steps``): its figures are per
step, so they compare.

    python benchmarks/gpu_paths.py --out benchmarks/results/gpu_paths_qwen05.json
    python benchmarks/gpu_paths.py --config-dir DIR    # config.json + tokenizer files only

Exits 2 with a message when CUDA is not available (the comparison needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

_WEIGHTS = (".safetensors", ".bin", ".pt", ".gguf")


def config_dir(spec: str, dest: Path) -> Path:
    """Copy a model's config and tokenizer files (no weights) from the model store into ``dest``."""
    from lab.models import resolve

    src = Path(spec) if Path(spec).is_dir() else resolve(spec).path
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and not f.name.endswith(_WEIGHTS) and not f.name.startswith("lab_"):
            shutil.copy2(f, dest / f.name)
    return dest


def random_model(cfg_dir: Path, dest: Path, seed: int) -> Path:
    """A randomly initialised model of ``cfg_dir``'s architecture, saved with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(cfg_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(dest, safe_serialization=True)
    for f in cfg_dir.iterdir():
        if not (dest / f.name).exists():
            shutil.copy2(f, dest / f.name)
    return dest


def examples(n: int, seed: int) -> list[dict]:
    """Chat examples shaped like the fine-tune comparison's (a question of ~100 words, a short answer)."""
    import random

    rng = random.Random(seed)
    words = ["river", "castle", "engineer", "patent", "voltage", "season", "stadium", "duke", "army", "treaty",
             "coil", "lamp", "city", "league", "winter", "trophy", "island", "harbour", "council", "tower"]
    out = []
    for i in range(n):
        context = " ".join(rng.choice(words) for _ in range(100))
        answer = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6)))
        out.append({"messages": [{"role": "user", "content": f"Context: {context}\nQuestion {i}: which?"}],
                    "answer": answer})
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def quarters(losses: list) -> dict:
    """Mean training loss of the first and the last quarter of the steps (one step at least each)."""
    k = max(1, len(losses) // 4)
    values = [v for _, v in losses]
    return {"loss_first_quarter": round(sum(values[:k]) / k, 4), "loss_last_quarter": round(sum(values[-k:]) / k, 4)}


def train(model_dir: Path, device: str, steps: int, work: Path, data: list[dict], batch_size: int,
          max_length: int) -> dict:
    """LoRA with checkpoint + resume, then full fine-tuning, through lab.finetune on ``device``."""
    import torch

    from lab.finetune import FinetuneConfig, finetune

    def peak() -> float:
        return (torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else rss_mb()

    out: dict = {}
    half = max(1, steps // 2)
    common = {"model": str(model_dir), "batch_size": batch_size, "max_length": max_length, "eval_every": 0,
              "device": device}
    lora_dir = work / f"{device}-lora"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = finetune(data, data[:8], FinetuneConfig(method="lora", max_steps=steps, save_every=half,
                                                    learning_rate=2e-3, **common), lora_dir, progress=False)
    again = finetune(data, data[:8], FinetuneConfig(method="lora", max_steps=2 * steps, save_every=half,
                                                    learning_rate=2e-3, **common), lora_dir, progress=False)
    out["lora"] = {"steps": first.steps, "s_per_step": round(first.wall_s / first.steps, 4),
                   # over both runs (the resumed run's loss list carries the first run's)
                   **quarters(again.train_loss),
                   "resumed_from_step": again.resumed_from_step, "steps_after_resume": again.steps,
                   "peak_mb": round(peak(), 1),
                   "trainable_params": first.trainable_params, "total_params": first.total_params}
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    full = finetune(data, data[:8], FinetuneConfig(method="full", max_steps=steps, save_every=0,
                                                   learning_rate=1e-4, **common), work / f"{device}-full",
                    progress=False)
    out["full"] = {"steps": full.steps, "s_per_step": round(full.wall_s / full.steps, 4),
                   **quarters(full.train_loss),
                   "peak_mb": round(peak(), 1)}
    return out


def generate(model_dir: Path, device: str, dtype: str, n: int, batch_size: int, max_new: int,
             rounds: int = 3) -> dict:
    """Generated tokens/s of TransformersBackend, the median of ``rounds`` (greedy; random weights
    rarely stop early)."""
    from lab.generate import GenParams
    from lab.generate.hf import TransformersBackend

    b = TransformersBackend(str(model_dir), batch_size=batch_size, dtype=dtype, device=device)
    prompts = [e["messages"][0]["content"] for e in examples(n, seed=1)]
    # Warm-up over every batch shape: on CUDA the first call of each shape picks its kernels (a
    # probe on an H200 measured bfloat16's first round at half the speed of its later ones).
    b.generate(prompts, GenParams(max_new_tokens=2))
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        gens = b.generate(prompts, GenParams(max_new_tokens=max_new))
        s = time.perf_counter() - t0
        tokens = sum(g.tokens_out for g in gens)
        rates.append(round(tokens / s, 1))
    b.close()
    return {"dtype": dtype, "device": str(b.device), "prompts": n, "tokens_out_per_round": tokens,
            "tokens_per_s_rounds": rates, "tokens_per_s": sorted(rates)[len(rates) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct",
                    help="model-store spec whose config and tokenizer are used (weights are random)")
    ap.add_argument("--config-dir", type=Path, help="a folder with config.json and tokenizer files instead")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run on CUDA")
    ap.add_argument("--cpu-steps", type=int, default=4, help="optimizer steps per run on the CPU baseline")
    ap.add_argument("--batch-size", type=int, default=4, help="training micro-batch (the profile's)")
    ap.add_argument("--max-length", type=int, default=384, help="training sequence cut (the profile's)")
    ap.add_argument("--gen-batch-size", type=int, default=8)
    ap.add_argument("--gen-prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--devices", default="cuda,cpu", help="comma-separated; the first is checked, the last "
                    "is the baseline of the ratios (a CPU-only smoke run: --devices cpu)")
    ap.add_argument("--out", type=Path, help="JSON file for the figures")
    args = ap.parse_args()
    devices = [d.strip() for d in args.devices.split(",") if d.strip()]

    import torch

    if "cuda" in devices and not torch.cuda.is_available():
        print("gpu_paths: CUDA is not available here; run this on a machine with a GPU", file=sys.stderr)
        raise SystemExit(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cfg = args.config_dir or config_dir(args.model, work / "config")
        model_dir = random_model(cfg, work / "model", seed=0)
        data = examples(64, seed=0)
        report: dict = {
            "what": "lab.finetune and TransformersBackend on CUDA vs this machine's CPU, random weights of "
                    f"{json.loads((cfg / 'config.json').read_text()).get('architectures')} ({args.model})",
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "train": {}, "generate": {},
        }
        for device in devices:
            steps = args.cpu_steps if device == "cpu" else args.steps
            t0 = time.perf_counter()
            report["train"][device] = train(model_dir, device, steps, work, data, args.batch_size,
                                           args.max_length)
            print(f"train {device}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        runs = [(d, dt) for d in devices for dt in (("float32", "bfloat16") if d != "cpu" else ("float32",))]
        for device, dtype in runs:
            n = args.gen_prompts if device == "cuda" else args.gen_batch_size
            report["generate"][f"{device}-{dtype}"] = generate(model_dir, device, dtype, n, args.gen_batch_size,
                                                               args.max_new_tokens)
        t, g = report["train"], report["generate"]
        fast, base = devices[0], devices[-1]
        if fast != base:
            report[f"ratios_{base}_over_{fast}"] = {
                "lora_s_per_step": round(t[base]["lora"]["s_per_step"] / t[fast]["lora"]["s_per_step"], 1),
                "full_s_per_step": round(t[base]["full"]["s_per_step"] / t[fast]["full"]["s_per_step"], 1),
                "generate_tokens_per_s_float32": round(g[f"{fast}-float32"]["tokens_per_s"]
                                                        / g[f"{base}-float32"]["tokens_per_s"], 1),
            }
        # on the device under test (the baseline runs too few steps for a loss trend)
        checks = {
            "lora_resumed_from_checkpoint": t[fast]["lora"]["resumed_from_step"] == t[fast]["lora"]["steps"]
            and t[fast]["lora"]["steps_after_resume"] == 2 * t[fast]["lora"]["steps"],
            "lora_loss_fell": t[fast]["lora"]["loss_last_quarter"] < t[fast]["lora"]["loss_first_quarter"],
            "full_loss_fell": t[fast]["full"]["loss_last_quarter"] < t[fast]["full"]["loss_first_quarter"],
        }
        report["checks"] = checks
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if not all(checks.values()):
        raise SystemExit(f"gpu_paths: a check failed: {checks}")


if __name__ == "__main__":
    main()
