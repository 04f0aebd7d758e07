"""Atomic file output: a reader (DVC, a notebook, a resumed job) never sees a half-written file.

Every writer goes through a temp file in the destination folder, then ``os.replace``; a crash
leaves the previous file intact. Files get normal permissions (``0666 & ~umask``), not the 0600
that :func:`tempfile.mkstemp` creates.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file path beside ``path`` for writers that want a file name (FAISS, torch); on a clean
    exit it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Stream ``lines`` (each with its own line end) into ``path`` atomically; returns the path."""
    with atomic_open(path, "w", newline="") as fh:
        fh.writelines(lines)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically; returns the path."""
    with atomic_open(path, "w", newline="") as fh:
        fh.write(text)
    return Path(path)


def write_json(path: str | Path, data: Any, *, fsync: bool = False, indent: int = 2, end: str = "\n") -> Path:
    """Write ``data`` as indented, key-sorted JSON atomically (then ``end``); returns the path."""
    with atomic_open(path, "w", fsync=fsync) as fh:
        json.dump(data, fh, indent=indent, sort_keys=True, default=str)
        fh.write(end)
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


# --------------------------------------------------------------------------- folders


def remove_dir(path: str | Path) -> None:
    """Remove a folder by first renaming it aside, so its name is free at once even if rmtree fails."""
    path = Path(path)
    if not path.exists():
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
    os.replace(path, aside / "x")
    shutil.rmtree(aside, ignore_errors=True)


def replace_dir(tmp: str | Path, target: str | Path) -> Path:
    """Move the fully written folder ``tmp`` to ``target`` (same file system), replacing an old
    ``target``: ``os.replace`` cannot overwrite a non-empty folder, so the old one is moved aside
    first. A reader sees the old folder or the new one, never a mix."""
    target = Path(target)
    remove_dir(target)
    os.replace(tmp, target)
    return target


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, mode: int = 0o755) -> Iterator[Path]:
    """A temp folder beside ``target`` to write into; on a clean exit it replaces ``target``
    (:func:`replace_dir`), on error it is removed and ``target`` is untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(mode)  # mkdtemp makes it private (0700)
    try:
        yield tmp
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
