"""Atomic training checkpoints: ``<out_dir>/checkpoints/step-<N>/``, the newest ``keep`` kept.

A checkpoint is written into a hidden temp folder beside its final place, every file fsynced,
then renamed into place in one ``os.replace``: a ``step-<N>`` folder either does not exist or is
complete, whenever the writer is killed. Leftover temp folders of a killed writer are removed by
the next run. ``state.json`` is written last and is what marks a folder as a checkpoint.

Files: ``model.pt`` (the trainable weights: the whole model for ``full``, the adapter for LoRA),
``optimizer.pt``, ``scheduler.pt``, ``rng.pt`` (torch CPU/CUDA generator states per worker) and
``state.json`` (step, data position, losses so far, tokens seen, python/numpy RNG states per
worker, the run's identity and config).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from lab.errors import LabError
from lab.io import remove_dir
from lab.io import replace_dir as io_replace_dir

CHECKPOINTS = "checkpoints"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")
_TMP_PREFIX = ".tmp-step-"


def checkpoints_dir(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINTS


def list_checkpoints(out_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as ``(step, folder)``, oldest first."""
    root = checkpoints_dir(out_dir)
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and (d / STATE_FILE).is_file():
            found.append((int(m.group(1)), d))
    return sorted(found)


def latest_checkpoint(out_dir: Path) -> tuple[int, Path] | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def remove_partial(out_dir: Path) -> list[Path]:
    """Delete temp folders a killed writer left behind; returns what was removed.

    Only safe while no other process writes checkpoints here (:func:`out_dir_lock` sees to that).
    """
    root = checkpoints_dir(out_dir)
    gone = [d for d in root.glob(f"{_TMP_PREFIX}*") if d.is_dir()] if root.is_dir() else []
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


def _fsync_tree(folder: Path) -> None:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_remove_dir = remove_dir  # the checkpoint code's historic name


def write_checkpoint(out_dir: Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically with ``write(tmp_folder)``, then keep only the newest ``keep``.

    ``write`` must write ``state.json`` last. Returns the checkpoint folder.
    """
    root = checkpoints_dir(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{step}-", dir=root))
    target = root / f"step-{step}"
    try:
        write(tmp)
        if not (tmp / STATE_FILE).is_file():
            raise LabError(f"checkpoint writer left no {STATE_FILE} in {tmp}")
        tmp.chmod(0o755)  # mkdtemp makes it private; a checkpoint is a normal folder
        _fsync_tree(tmp)
        io_replace_dir(tmp, target)  # a stale one of the same step (from an earlier run) is moved aside
        _fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for _, old in list_checkpoints(out_dir)[:-keep]:
        _remove_dir(old)
    return target


def replace_dir(tmp: Path, target: Path) -> Path:
    """Move a fully written ``tmp`` folder to ``target`` atomically, replacing an old ``target``."""
    _fsync_tree(tmp)
    io_replace_dir(tmp, target)
    _fsync_dir(target.parent)
    return target


@contextlib.contextmanager
def out_dir_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` so two runs never write the same checkpoints.

    The kernel releases it when the process dies, so a killed run never leaves a stale lock.
    """
    import fcntl

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(f"another fine-tuning run holds {out_dir} (lock {out_dir / '.lock'}); wait for it "
                           "or use another out_dir") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
