"""Start or join Ray the same way everywhere (sweeps, distributed fine-tuning)."""

from __future__ import annotations

import os
from typing import Any


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Initialise Ray unless it already is; returns True when this call started it (so the caller shuts down).

    ``address=None`` starts a local Ray with ``num_cpus`` (default: all); ``"auto"`` or
    ``"ray://host:10001"`` joins a cluster. Workers get this process's ``LAB_*``, ``HF_*`` and
    ``TRANSFORMERS_*`` variables, so they find the same model cache and offline switches (and, inside
    a stage, write their standard error to its log), with their progress bars off. No dashboard, and
    telemetry stays off (``lab.env``).
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {
        "include_dashboard": False, "log_to_driver": False, "configure_logging": True, "logging_level": "ERROR",
        # workers' bars off (LAB_PROGRESS=0): the driver shows trials done/total; many processes
        # redrawing bars into one stage log would interleave
        "runtime_env": {"env_vars": {**{k: v for k, v in os.environ.items()
                                        if k.startswith(("LAB_", "HF_", "TRANSFORMERS_"))}, "LAB_PROGRESS": "0"}},
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    ray.init(**kwargs)
    return True
