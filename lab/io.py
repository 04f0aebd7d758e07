"""File IO: atomic output, and the one JSON Lines reader.

Atomic output: a reader (DVC, a notebook, a resumed job) never sees a half-written file. Every
writer goes through a temp file in the destination folder, then ``os.replace``; a crash leaves the
previous file intact. Files get normal permissions (``0666 & ~umask``), not the 0600 that
:func:`tempfile.mkstemp` creates.

JSON Lines: :func:`iter_jsonl` is the only place a ``.jsonl`` file is split and parsed, so every
reader of one treats lines, encodings and errors the same way and names ``path:line N``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

from lab.errors import DataError


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


# --------------------------------------------------------------------------- JSON Lines

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class JsonLine:
    """One non-blank line of a JSON Lines file: its record, or why it is not one.

    Attributes
    ----------
    line:
        1-based line number.
    where:
        ``"<path>:line <N>"``, the prefix of every message about this line.
    record:
        The parsed JSON object; empty when ``error`` is set.
    error:
        Why the line is not a record (``"not valid JSON (...)"``, ...); None for a good line.
    kind:
        ``"invalid_utf8"``, ``"bad_json"`` or ``"not_object"`` when ``error`` is set, else ``""``.
    """

    line: int
    where: str
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    kind: str = ""


def iter_lines(path: str | Path, *, desc: str | None = None) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` for each line of ``path``, streamed: the one line reader under
    every line-based format lab reads (JSON Lines, BEIR's qrels TSV).

    Lines end at ``b"\n"`` only (a binary file splits there: ``str.splitlines`` would also cut at
    U+2028, U+0085 ..., which JSON strings may hold unescaped); a leading UTF-8 BOM on line 1 is
    dropped. ``desc`` shows a progress bar over the file's bytes (hidden when not on a terminal).

    Raises
    ------
    DataError
        The file is missing or unreadable (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (or not a file)")
    bar = None
    if desc is not None:
        from lab.progress import bar as progress_bar

        bar = progress_bar(total=path.stat().st_size, desc=desc, unit="B", unit_scale=True, leave=False)
    try:
        with path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if bar is not None:
                    bar.update(len(raw))
                if lineno == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM):]
                yield lineno, raw
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    finally:
        if bar is not None:
            bar.close()


def decode_line(path: str | Path, lineno: int, raw: bytes) -> str:
    """``raw`` (line ``lineno`` of ``path``) as strict UTF-8 text.

    Raises
    ------
    DataError
        Not valid UTF-8: the message names the file, line and byte, and how to re-encode the file.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:line {lineno}: not valid UTF-8 at byte {exc.start} of the line "
                        f"(bad bytes {raw[exc.start:exc.end]!r}); {_FIX['invalid_utf8']}") from None


def iter_jsonl(path: str | Path, *, strict: bool = True, desc: str | None = None) -> Iterator[JsonLine]:
    """The non-blank lines of the JSON Lines file ``path``, streamed, one :class:`JsonLine` each.

    Lines end at ``\n`` only: ``str.splitlines`` would also cut at U+2028, U+0085 ..., which JSON
    strings may hold unescaped (in-the-wild prompts do). Each line is strict UTF-8 (a leading BOM
    on line 1 is dropped) holding one JSON object.

    Parameters
    ----------
    path:
        The file.
    strict:
        True: the first bad line raises. False: bad lines are yielded with ``error`` set, for
        readers that count and skip them.
    desc:
        Show a progress bar over the file's bytes with this label (hidden when not on a terminal).

    Raises
    ------
    DataError
        The file is missing or unreadable; with ``strict``, a line that is not valid UTF-8, not
        valid JSON or not a JSON object (the message names the file and line and how to fix it).
    """
    for lineno, raw in iter_lines(path, desc=desc):
        if not raw.strip():
            continue
        out = _parse_line(Path(path), lineno, raw)
        if out.error is not None and strict:
            raise DataError(f"{out.where}: {out.error}; {_FIX[out.kind]}")
        yield out


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of the JSON Lines file ``path``, in file order (:func:`iter_jsonl`, strict)."""
    return [x.record for x in iter_jsonl(path)]


_FIX = {
    "invalid_utf8": "re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`)",
    "bad_json": "each line must be one JSON object: fix or delete the line",
    "not_object": "each line must be one JSON object: fix or delete the line",
}


def _parse_line(path: Path, lineno: int, raw: bytes) -> JsonLine:
    where = f"{path}:line {lineno}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return JsonLine(lineno, where, error=f"not valid UTF-8 at byte {exc.start} of the line "
                        f"(bad bytes {raw[exc.start:exc.end]!r})", kind="invalid_utf8")
    try:
        rec = json.loads(text.rstrip("\r\n"))  # so that colno counts within the line
    except json.JSONDecodeError as exc:
        return JsonLine(lineno, where, error=f"not valid JSON ({exc.msg} at column {exc.colno})", kind="bad_json")
    if not isinstance(rec, dict):
        return JsonLine(lineno, where, error=f"expected a JSON object, got {type(rec).__name__}", kind="not_object")
    return JsonLine(lineno, where, rec)
