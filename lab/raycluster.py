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


def shutdown(timeout_s: float = 20.0) -> bool:
    """``ray.shutdown()`` with a bound; returns True when it finished in time.

    After a Ctrl-C that reached the whole process group, Ray's own processes (GCS, raylet) may be
    gone before the driver shuts down, and ``ray.shutdown()`` can then wait on them for a minute or
    more. Past ``timeout_s`` the Ray processes this process started are stopped (SIGTERM, then
    SIGKILL: :func:`lab.procs.stop_tree`), Ray's exit hook is dropped so the interpreter does not
    wait on it again, and the caller goes on (with its exception, if any).
    """
    import atexit
    import threading

    import psutil
    import ray

    from lab.procs import stop_tree

    try:
        started = psutil.Process().children(recursive=True)
    except psutil.Error:
        started = []
    done = threading.Thread(target=ray.shutdown, name="ray-shutdown", daemon=True)
    done.start()
    done.join(timeout_s)
    if not done.is_alive():
        return True
    import sys

    print(f"lab: ray.shutdown() did not return within {timeout_s:.0f} s; stopping the Ray processes "
          f"this run started", file=sys.stderr, flush=True)
    stop_tree([p for p in started if p.is_running()])
    atexit.unregister(ray.shutdown)
    done.join(5)
    return False
