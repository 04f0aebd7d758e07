"""Progress a person can see, kept out of the report.

Long work in ``lab`` (embedding batches, sweep trials, training steps, generation) reports through
:func:`bar`, a plain :class:`tqdm.tqdm` on standard error (never ``tqdm.auto``'s notebook widget,
which a headless kernel cannot render and which warns ``IProgress not found``).

Inside a stage, ``lab run`` sets :data:`LOG_ENV` to a log file beside the stage's outputs. When a
process imports ``lab`` with it set (the notebook's kernel, and any child such as the fine-tune
trainer), :func:`route_stderr` sends that process's standard error — Python's ``sys.stderr`` and
file descriptor 2, so also warnings, logging and C libraries — into the log, and ``lab run``
streams the log to the terminal. The executed notebook, the report a person opens, keeps only what
cells display and print.

``LAB_PROGRESS=0`` switches bars off; ``LAB_PROGRESS=1`` forces them on without a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

#: Environment variable naming the stage's progress log (set by ``lab run``).
LOG_ENV = "LAB_PROGRESS_LOG"
_routed: str | None = None


def enabled() -> bool:
    """Whether bars show: on in a ``lab run`` stage or on a terminal, unless ``LAB_PROGRESS=0``."""
    flag = os.environ.get("LAB_PROGRESS", "").lower()
    if flag in ("0", "false", "no", "off"):
        return False
    if flag in ("1", "true", "yes", "on") or os.environ.get(LOG_ENV):
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar(iterable: Iterable[Any] | None = None, *, desc: str = "", total: int | None = None,
        enable: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar on standard error, shown when ``enable`` and :func:`enabled` (else a silent one)."""
    from tqdm import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("mininterval", float(os.environ.get("LAB_PROGRESS_INTERVAL", "1")))
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=not (enable and enabled()), **kwargs)


def route_stderr() -> str | None:
    """Send this process's standard error to the file named by :data:`LOG_ENV` (append, line
    buffered); returns the path, or None when the variable is unset. Idempotent."""
    global _routed
    path = os.environ.get(LOG_ENV)
    if not path or _routed == path:
        return _routed
    try:
        stream = open(path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (lives as long as the process)
    except OSError:
        return None  # the log folder is gone: keep the old stderr rather than fail an import
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        os.dup2(stream.fileno(), 2)  # C libraries and child processes write to fd 2
    except OSError:
        pass
    sys.stderr = stream
    _routed = path
    # Libraries that import tqdm.auto (sentence-transformers, datasets) warn once that the headless
    # kernel has no notebook widgets; lab's bars never use widgets, so that line is only noise here.
    import warnings

    warnings.filterwarnings("ignore", message="IProgress not found")
    return path
