"""The ``format`` + ``version`` header every handoff file carries, and the one check of it.

A reader calls :func:`check_header` before it looks at anything else in the file, so an older,
newer or foreign file fails with the file's name, what was found, what this code reads, and the
command that writes a current one, instead of a ``KeyError`` deep inside the reading stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.errors import DataError


def header(fmt: str, version: int) -> dict[str, Any]:
    """The first two keys of a handoff file: ``{"format": fmt, "version": version}``."""
    return {"format": fmt, "version": version}


def check_header(data: Any, path: str | Path, fmt: str, version: int, regenerate: str,
                 error: type[Exception] = DataError) -> Mapping[str, Any]:
    """``data`` (a parsed handoff file) when its header is ``fmt`` at ``version``.

    Parameters
    ----------
    data:
        The parsed JSON of the file.
    path:
        The file, for the message.
    fmt, version:
        What this code reads.
    regenerate:
        The command that writes a current file (``dvc repro export``), for the message.
    error:
        The exception class raised (a subclass of :class:`lab.errors.LabError` of the reader's floor).

    Raises
    ------
    error
        ``data`` is not a mapping, names another format (a foreign file), or another version (older
        or newer than this code).
    """
    found = data.get("format") if isinstance(data, Mapping) else None
    if found != fmt:
        raise error(f"{path}: not a {fmt} file (format {found!r}); regenerate it with `{regenerate}`")
    got = data.get("version")
    if got != version:
        age = "an older" if isinstance(got, int) and got < version else "another"
        raise error(f"{path}: {age} {fmt} file (version {got!r}; this code reads version {version}); "
                    f"regenerate it with `{regenerate}`")
    return data


def write_versioned(path: str | Path, fmt: str, version: int, body: Mapping[str, Any]) -> Path:
    """Write ``body`` under the header ``fmt``/``version`` as key-sorted JSON, atomically."""
    from lab.io import write_json

    clash = {"format", "version"} & set(body)
    if clash:
        raise ValueError(f"{path}: {sorted(clash)} are the header's keys, not the body's")
    return write_json(Path(path), {**header(fmt, version), **body})


def read_versioned(path: str | Path, fmt: str, version: int, regenerate: str,
                   error: type[Exception] = DataError) -> dict[str, Any]:
    """The JSON mapping in ``path``, its header checked (:func:`check_header`).

    Raises
    ------
    error
        The file is missing or not JSON, or its header is not ``fmt`` at ``version``; the message
        names the file and ``regenerate``.
    """
    import json

    p = Path(path)
    if not p.is_file():
        raise error(f"{p}: not found; `{regenerate}` writes it")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise error(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno}); `{regenerate}` writes it again") from None
    return dict(check_header(data, p, fmt, version, regenerate, error))
