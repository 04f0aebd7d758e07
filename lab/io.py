"""Atomic file output: a reader (DVC, a notebook, a resumed job) never sees a half-written file.

Every writer goes through a temp file in the destination folder, then ``os.replace``; a crash
leaves the previous file intact. Files get normal permissions (``0666 & ~umask``), not the 0600
that :func:`tempfile.mkstemp` creates.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any


@lru_cache(maxsize=1)
def _umask() -> int:
    mask = os.umask(0)  # the only way to read the umask is to set it; restore at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on a clean exit it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        binary = "b" in mode
        with os.fdopen(fd, mode, **({} if binary else {"encoding": encoding, "newline": newline})) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically; returns the path."""
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, data: Any, *, fsync: bool = False) -> Path:
    """Write ``data`` as indented, key-sorted JSON atomically; returns the path."""
    with atomic_open(path, "w", fsync=fsync) as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
    return Path(path)


def write_csv(path: str | Path, frame: Any, **to_csv: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given); returns the path."""
    to_csv.setdefault("index", False)
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, **to_csv)
    return Path(path)


def write_figure(path: str | Path, fig: Any, **savefig: Any) -> Path:
    """Save a matplotlib figure as PNG atomically; returns the path."""
    savefig.setdefault("dpi", 110)
    savefig.setdefault("bbox_inches", "tight")
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", **savefig)
    return Path(path)
