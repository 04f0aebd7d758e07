"""Background services of the team stack (daemons): start, identify, stop, with no process left behind.

Each service runs in its own session (its own process group), so stopping it signals the group and
then checks that no member of the group is left, children included (uvicorn workers, PostgreSQL's
checkpointer). A process is identified by its PID *and* its start time, so a PID the kernel reused
for something else is never signalled. Linux only (``/proc``). Unlike :mod:`lab.procs` (children
that die with their owner), these outlive the command that started them, by design.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.errors import LabError


class TeamError(LabError, RuntimeError):
    """The team stack could not start, stop, or be reached; the message says which part and why."""


@dataclass(frozen=True)
class Proc:
    """One started service: its name, PID, process group and start time (clock ticks since boot)."""

    name: str
    pid: int
    pgid: int
    start: int

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, pgid, start time) from ``/proc/PID/stat``, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[2]), int(fields[19])


def alive(proc: Proc) -> bool:
    """True when ``proc`` still runs: same PID, same start time, not a zombie."""
    st = _stat(proc.pid)
    return st is not None and st[0] != "Z" and st[2] == proc.start


def group_members(pgid: int) -> list[int]:
    """PIDs of the live (non-zombie) processes in process group ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None and st[1] == pgid and st[0] != "Z":
                pids.append(int(entry.name))
    return pids


def port_in_use(host: str, port: int) -> bool:
    """True when something listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_port(name: str, host: str, port: int, option: str) -> None:
    """Raise :class:`TeamError` naming the port and the option that moves it when it is taken."""
    if port_in_use(host, port):
        raise TeamError(f"port {port} on {host} ({name}) is in use by another process: stop it, "
                        f"or start the stack on another port with {option}")


def spawn(name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None,
          user: str | None = None, cwd: Path | None = None) -> Proc:
    """Start ``argv`` in a new session, stdout and stderr appended to ``log``; returns its record.

    ``user`` runs it as that account (root starting PostgreSQL, which refuses to run as root).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    kwargs = as_user(user)
    with open(log, "ab") as out:
        try:
            p = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=dict(env) if env is not None else None, cwd=cwd,
                                 start_new_session=True, **kwargs)
        except OSError as exc:
            raise TeamError(f"{name}: cannot start {argv[0]}: {exc}") from exc
    st = _stat(p.pid)
    return Proc(name=name, pid=p.pid, pgid=p.pid, start=st[2] if st else 0)


def as_user(user: str | None) -> dict:
    """``subprocess`` arguments that run a child as ``user`` (its primary group, no others); {} for None."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def stop(proc: Proc, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Signal ``proc``'s process group with ``sig``, wait, then SIGKILL what is left.

    Raises :class:`TeamError` when a member of the group survives SIGKILL.
    """
    if not alive(proc):
        members = group_members(proc.pgid)  # a child that outlived its parent is still ours
    else:
        members = [proc.pid]
    if members:
        _signal_group(proc.pgid, sig)
    deadline = time.monotonic() + timeout
    while group_members(proc.pgid) and time.monotonic() < deadline:
        _reap(proc.pid)
        time.sleep(0.2)
    if group_members(proc.pgid):
        _signal_group(proc.pgid, signal.SIGKILL)
        time.sleep(1.0)
    _reap(proc.pid)
    left = group_members(proc.pgid)
    if left:
        raise TeamError(f"{proc.name}: processes {left} of group {proc.pgid} survived SIGKILL")


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when it is our child (a zombie otherwise looks alive to ps)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_until(check, what: str, timeout: float, proc: Proc | None = None, log: Path | None = None) -> None:
    """Poll ``check()`` until it returns True; raise :class:`TeamError` on timeout or when ``proc`` died.

    The error carries the last lines of ``log``, where the service says why it did not come up.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except TeamError:
            raise   # the check knows it cannot succeed
        except Exception:  # noqa: BLE001, S110 - not up yet; the timeout reports it
            pass
        if proc is not None and not alive(proc):
            raise TeamError(f"{what} exited while starting{_tail(log)}")
        time.sleep(0.5)
    raise TeamError(f"{what} did not answer within {timeout:.0f} s{_tail(log)}")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(text)
