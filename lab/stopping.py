"""Ctrl-C that stops a notebook run: the interrupt reaches the kernel, nothing is orphaned.

A notebook kernel runs in a session of its own (Jupyter starts it that way), so a terminal's
SIGINT never reaches it, and nbclient's own handler only schedules a kernel clean-up while the
cell keeps running. :func:`interruptible` runs papermill in a worker thread and keeps the signals
on the main thread:

1. the first SIGINT or SIGTERM (or the death of ``dvc repro`` above this process, which does not
   reach ``lab run`` by itself) interrupts the running cell, as Jupyter's "interrupt kernel" does:
   SIGINT to the kernel's process group, so ``lab``'s long jobs stop where they are (the trainer
   child at its last atomic checkpoint, a sweep after its finished trials, generation and
   embedding loops between batches);
2. after a grace period (``LAB_INTERRUPT_GRACE_S``, default 10 s), or at once on a second Ctrl-C,
   the kernel and every process under it are stopped (SIGTERM, then SIGKILL);
3. it raises :class:`Interrupted`, whose message says what was interrupted, what was kept and how
   to get the last committed results back; ``lab run`` exits 130 (SIGINT) or 143 (SIGTERM).

A :class:`lab.procs.Reaper` watches the kernel's tree the whole time, so even ``kill -9`` of
``lab run`` leaves no kernel, trainer or Ray process behind.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.errors import LabError
from lab.procs import Reaper, descendants, stop_tree, watch_ancestors

#: papermill engine name of the engine :func:`_register_engine` adds.
ENGINE = "lab"

GRACE_ENV = "LAB_INTERRUPT_GRACE_S"


class Interrupted(LabError):
    """The run was stopped by a signal; ``signum`` says which (exit code ``128 + signum``)."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def _register_engine() -> None:
    """A papermill engine that reports the kernel's pid as soon as the kernel has started
    (registered on first use, so importing this module does not import papermill)."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    if ENGINE in papermill_engines._engines:
        return

    class _Client(PapermillNotebookClient):
        def __init__(self, nb_man: Any, on_kernel: Callable[[int], None] | None = None, **kw: Any) -> None:
            super().__init__(nb_man, **kw)
            self._on_kernel = on_kernel

        def start_new_kernel(self, **kwargs: Any) -> None:
            super().start_new_kernel(**kwargs)
            pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
            if self._on_kernel is not None and pid:
                self._on_kernel(int(pid))

    class _Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, log_output: bool = False,
                                     stdout_file: Any = None, stderr_file: Any = None, start_timeout: int = 60,
                                     execution_timeout: int | None = None, **kwargs: Any) -> Any:
            from papermill.utils import merge_kwargs, remove_args

            on_kernel = kwargs.pop("on_kernel", None)
            kwargs = remove_args(["input_path"], **kwargs)
            safe = remove_args(["timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(safe, timeout=execution_timeout or kwargs.get("timeout"),
                                 startup_timeout=start_timeout, kernel_name=kernel_name, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            return _Client(nb_man, on_kernel=on_kernel, **final).execute()

    papermill_engines.register(ENGINE, _Engine)


def _grace_s() -> float:
    raw = os.environ.get(GRACE_ENV, "10")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise LabError(f"{GRACE_ENV}={raw!r}: expected seconds, e.g. {GRACE_ENV}=10") from None


def _signal_kernel(pid: int, signum: int) -> None:
    """Signal the kernel's process group (the kernel leads it), or the kernel alone."""
    try:
        os.killpg(os.getpgid(pid), signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def interruptible(run: Callable[[Callable[[int], None]], Any], *, what: str, partial: Path | None = None,
                  hint: str = "") -> Any:
    """Call ``run(on_kernel)`` in a worker thread so that SIGINT/SIGTERM stop it (module docstring).

    ``run`` executes the notebook and calls ``on_kernel(pid)`` once the kernel is up. ``partial``
    is the notebook papermill writes as it goes: on an interrupt it is kept as
    ``<name>.interrupted.ipynb`` if it is a complete file, else removed. ``hint`` is appended to the
    message (how to get the last results back). Outside the main thread signals cannot be caught:
    ``run`` is then called directly.
    """
    _register_engine()
    if threading.current_thread() is not threading.main_thread():
        return run(lambda pid: None)

    kernel: dict[str, Any] = {}
    reaper = Reaper()
    box: dict[str, Any] = {}
    signals: list[int] = []
    wake = threading.Event()

    def on_kernel(pid: int) -> None:
        kernel["pid"] = pid
        reaper.watch(pid)

    def work() -> None:
        try:
            box["value"] = run(on_kernel)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread
            box["error"] = exc

    def on_signal(signum: int, _frame: Any) -> None:
        signals.append(signum)
        wake.set()

    def on_ancestor_death(pid: int, name: str) -> None:
        print(f"[lab run] {what}: {name} (pid {pid}), which started this run, is gone; stopping",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stop_watch = watch_ancestors(on_ancestor_death)
    worker = threading.Thread(target=work, daemon=True, name="lab-notebook")
    t0 = time.time()
    try:
        worker.start()
        while worker.is_alive() and not signals:
            wake.wait(0.5)
        if signals:
            _stop(worker, kernel, signals, wake, what)
    finally:
        stop_watch.set()
        for s, h in previous.items():
            signal.signal(s, h)
        reaper.close()
    if signals:
        signum = signals[0]
        kept = _keep_partial(partial)
        name = signal.Signals(signum).name
        raise Interrupted(
            f"{what}: interrupted by {name} after {time.time() - t0:.0f} s; the kernel and the processes "
            f"it started are stopped.{kept}{(' ' + hint) if hint else ''}", signum)
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _stop(worker: threading.Thread, kernel: dict[str, Any], signals: list[int], wake: threading.Event,
          what: str) -> None:
    """Interrupt the cell, wait the grace period (or for a second signal), then stop the tree."""
    grace = _grace_s()
    print(f"[lab run] {what}: {signal.Signals(signals[0]).name} received: interrupting the running cell "
          f"(up to {grace:.0f} s to stop cleanly; Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
    pid: int | None = None
    tree: list[Any] = []
    deadline = time.time() + grace
    seen = len(signals)
    while True:
        if pid is None and kernel.get("pid"):  # also when Ctrl-C came while the kernel was starting
            pid = kernel["pid"]
            _signal_kernel(pid, signal.SIGINT)
        if pid:
            tree = _union(tree, descendants(pid))
        if not worker.is_alive() or time.time() >= deadline or len(signals) > seen:
            break
        wake.clear()
        wake.wait(0.2)
    pid = pid or kernel.get("pid")
    if pid:
        import psutil

        try:
            tree = [psutil.Process(pid), *_union(tree, descendants(pid))]
        except psutil.Error:
            pass
    stopped = stop_tree(tree, grace_s=1.0 if len(signals) > seen else 3.0)
    worker.join(timeout=10)
    if stopped:
        print(f"[lab run] {what}: stopped {len(stopped)} process(es) left running (kernel and children)",
              file=sys.stderr, flush=True)


def _union(a: list[Any], b: list[Any]) -> list[Any]:
    seen = {p.pid for p in a}
    return a + [p for p in b if p.pid not in seen]


def _keep_partial(partial: Path | None) -> str:
    """Keep papermill's partly executed notebook if it is a complete file; say where it is."""
    if partial is None or not partial.is_file():
        return ""
    import nbformat

    target = partial.with_name(partial.name.removeprefix(".").replace(".running.ipynb", ".interrupted.ipynb"))
    try:
        nbformat.read(str(partial), as_version=4)
    except Exception:  # noqa: BLE001 - a notebook cut off mid-write: not worth keeping
        partial.unlink(missing_ok=True)
        return ""
    os.replace(partial, target)
    return f" The partly executed notebook is {target}."


def recovery_hint(stage: str, root: Path, dvc_file: str = "dvc.yaml") -> str:
    """What an interrupted stage kept and how to get its last committed results back (from dvc.yaml)."""
    from lab.config import read_params, read_yaml
    from lab.config.base import interpolate
    from lab.errors import ConfigError

    try:
        spec = ((read_yaml(root / dvc_file) or {}).get("stages") or {})[stage]
        # outputs are written through their stage's out_dir (${stage.out_dir}/...): show real paths
        spec = interpolate(spec, read_params(root / "params.yaml"), str(root / dvc_file), stage)
    except (OSError, ConfigError, KeyError, TypeError, AttributeError):
        return ""
    git_tracked, cached, persistent = [], [], []
    for kind in ("outs", "metrics", "plots"):
        for entry in spec.get(kind) or []:
            path, opts = (next(iter(entry.items())) if isinstance(entry, dict) else (entry, {}))
            opts = opts or {}
            if opts.get("persist"):
                persistent.append(path)
            elif opts.get("cache", True) is False:
                git_tracked.append(path)
            else:
                cached.append(path)
    parts = []
    if persistent:
        parts.append("Kept for the rerun, which resumes from them: " + ", ".join(persistent) + ".")
    if git_tracked:
        parts.append("Last committed results: git checkout -- " + " ".join(git_tracked) + ".")
    if cached:
        parts.append(f"Cached outputs of the last good run: dvc checkout {stage}.")
    return " ".join(parts)
