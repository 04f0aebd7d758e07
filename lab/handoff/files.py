"""The envelope every handoff file shares: a ``format`` naming what the file is and a ``version`` of
its layout, checked on reading so an old, newer or foreign file fails with its name and the command
that regenerates it instead of a KeyError three stages later."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.io import write_json


def write_versioned(path: str | Path, fmt: str, version: int, body: dict[str, Any]) -> Path:
    """Write ``body`` with ``format`` and ``version`` as JSON, atomically."""
    return write_json(Path(path), {"format": fmt, "version": version, **body})


def read_versioned(path: str | Path, fmt: str, version: int, regenerate: str) -> dict[str, Any]:
    """The JSON mapping at ``path``, checked to be ``fmt`` at ``version``.

    Raises
    ------
    DataError
        Missing file, invalid JSON, another format or another version; the message names the file
        and ``regenerate`` (the command that writes a current one).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: not found; {regenerate} writes it")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno}); {regenerate} writes it again") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"{p}: not a {fmt} file (format {got!r}); {regenerate} writes one")
    if data.get("version") != version:
        raise DataError(f"{p}: {fmt} version {data.get('version')!r}, this lab reads version {version}; "
                        f"{regenerate} writes a current one")
    return data
