"""Child processes that stop when asked and never outlive the process that owns them.

Three tools, used by the notebook runner, the fine-tune study and the sweep:

- :func:`stop_tree` stops a set of processes: SIGTERM, a grace period, then SIGKILL for the ones
  still alive. It matches each process by pid *and* start time, so a recycled pid is never hit.
- :func:`call_in_child` runs a function in a spawned process (the fine-tune trainer) and, when the
  caller is interrupted (``KeyboardInterrupt``) or fails, stops the child before re-raising; the
  child also dies with its parent (``PR_SET_PDEATHSIG`` on Linux), so even ``kill -9`` of the
  caller leaves no trainer behind.
- :class:`Reaper` is a small watchdog process, in its own session so a terminal's Ctrl-C does not
  reach it, that snapshots the process tree under a pid (the notebook kernel) every half second and
  stops whatever is left of it once its owner has gone, by any means, ``kill -9`` included. Ray's
  node processes, which a killed driver can leave behind, are in that tree.

:func:`watch_ancestors` calls back when a process above this one dies (``kill -9`` of ``dvc repro``
leaves ``lab run`` orphaned but running otherwise).

psutil (a dependency of Ray and MLflow) lists descendants portably; the signals are POSIX.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

#: Seconds between SIGTERM and SIGKILL when stopping a process tree.
TERM_GRACE_S = 3.0


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except OSError:
            pass


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid`` (children, their children, ...); empty when ``pid`` is gone."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    """The processes of ``procs`` still running (same pid and start time; zombies count as gone)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def stop_tree(procs: Iterable[psutil.Process], grace_s: float = TERM_GRACE_S) -> list[psutil.Process]:
    """SIGTERM each process, wait up to ``grace_s``, SIGKILL the rest; returns those that were alive.

    A process whose pid was recycled is left alone (psutil compares start times).
    """
    targets = [p for p in alive(procs) if p.pid != os.getpid()]
    for p in targets:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(targets, timeout=grace_s)
    for p in still:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(still, timeout=grace_s)
    return targets


def _child_entry(conn: Any, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    die_with_parent()
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except BaseException as exc:  # noqa: BLE001 - sent back and re-raised in the parent
        try:
            conn.send(("error", exc))
        except Exception:  # noqa: BLE001 - an unpicklable exception: send its text
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        conn.close()


def call_in_child(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a spawned process; its result, or its exception re-raised here.

    When the caller is interrupted while waiting (Ctrl-C reaches the kernel as ``KeyboardInterrupt``)
    or anything else goes wrong, the child and everything it started are stopped (SIGTERM, then
    SIGKILL) before the exception propagates. ``fn`` and its arguments must be picklable.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child_entry, args=(send, fn, args, kwargs), name=f"lab-{fn.__name__}")
    child.start()
    send.close()
    try:
        while not recv.poll(0.2):
            if not child.is_alive() and not recv.poll(0.2):
                raise ChildProcessError(f"{child.name} (pid {child.pid}) exited with code {child.exitcode} "
                                        "without a result (killed, or out of memory?)")
        status, value = recv.recv()
    except BaseException:
        stop_tree([psutil.Process(child.pid), *descendants(child.pid)] if child.is_alive() else [])
        raise
    finally:
        recv.close()
    child.join(timeout=10)
    if status == "error":
        raise value
    return value


def ancestors() -> list[psutil.Process]:
    """The processes above this one, nearest first, up to (not including) init (pid 1)."""
    out: list[psutil.Process] = []
    try:
        p = psutil.Process().parent()
        while p is not None and p.pid > 1:
            out.append(p)
            p = p.parent()
    except psutil.Error:
        pass
    return out


def _is_dvc(p: psutil.Process) -> bool:
    """``dvc`` itself or a Python running its entry point (``python .../bin/dvc repro``)."""
    try:
        argv = p.cmdline()
    except psutil.Error:
        return False
    return any(Path(a).name == "dvc" for a in argv[:2])


def pipeline_ancestors() -> list[psutil.Process]:
    """The ancestors up to and including the nearest ``dvc`` process (empty when no dvc is above).

    Only these are watched: a shell that started ``nohup lab run ... &`` and then exited, or a
    terminal closed after such a start, must not stop the run; ``dvc repro`` killed must."""
    chain = ancestors()
    for i, p in enumerate(chain):
        if _is_dvc(p):
            return chain[:i + 1]
    return []


def watch_ancestors(on_death: Callable[[int, str], None], interval_s: float = 1.0) -> threading.Event:
    """Call ``on_death(pid, name)`` (once, from a daemon thread) when one of
    :func:`pipeline_ancestors` dies.

    Returns an event; set it to stop watching. ``kill -9`` of ``dvc repro`` does not reach the
    ``lab run`` it started; this is how that ``lab run`` learns it should stop.
    """
    chain = []
    for p in pipeline_ancestors():
        try:
            chain.append((p, p.name()))  # the name now: a dead process has none to ask for
        except psutil.Error:
            pass
    halt = threading.Event()

    def loop() -> None:
        while not halt.wait(interval_s):
            for p, name in chain:
                if not alive([p]):
                    on_death(p.pid, name)
                    return

    if chain:
        threading.Thread(target=loop, daemon=True, name="lab-ancestor-watch").start()
    return halt


class Reaper:
    """A watchdog process that stops the tree under ``pid`` once this process is gone.

    ``Reaper().watch(kernel_pid)`` after the kernel starts; :meth:`close` when the run is over (the
    watchdog then stops what is left of the tree and exits). If this process dies without closing it
    (``kill -9``), the watchdog sees its pipe close and does the same. It runs in its own session,
    so a terminal's Ctrl-C does not stop it before it has done its work.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lab.procs"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
        )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def watch(self, pid: int) -> None:
        """Add the tree under (and including) ``pid`` to what the watchdog stops."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(f"{pid}\n".encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self, timeout_s: float = 15.0) -> None:
        """End the watch: the watchdog stops any leftovers and exits (waited for up to ``timeout_s``)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()


def _reap_main() -> None:
    """The watchdog's loop (``python -m lab.procs``): read pids from stdin; at EOF stop their trees."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    roots: list[psutil.Process] = []
    seen: dict[tuple[int, float], psutil.Process] = {}
    fd = sys.stdin.fileno()
    buf = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    roots.append(psutil.Process(int(line)))
                except (ValueError, psutil.Error):
                    pass
        seen = _snapshot(roots, seen)
    # the owner is gone or done: one last look, then stop everything of the trees still running
    stop_tree(_snapshot(roots, seen).values())


def _snapshot(roots: list[psutil.Process], seen: dict[tuple[int, float], psutil.Process]
              ) -> dict[tuple[int, float], psutil.Process]:
    """``seen`` plus every live process of the trees under ``roots``, less those that have ended.

    Processes are remembered by (pid, start time): once the kernel dies its children are re-parented
    and no longer found under it, so the snapshot taken while it lived is what gets stopped."""
    for root in alive(roots):
        for p in [root, *descendants(root.pid)]:
            try:
                seen.setdefault((p.pid, p.create_time()), p)
            except psutil.Error:
                pass
    return {k: p for k, p in seen.items() if alive([p])}


if __name__ == "__main__":
    _reap_main()
