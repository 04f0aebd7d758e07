"""``predictions.jsonl``: every fine-tune arm's answer to every held-out question, written by the
fine-tune comparison, read by the judge stage (it judges them) and by export (it scores the arms).
One JSON object per line: ``arm``, ``id``, ``question``, ``answers``, ``prediction`` (and the RAG
arms' ``contexts``). The layout's version is the arms manifest's (:mod:`lab.handoff.arms`), which
is written beside it by the same run."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.io import iter_jsonl, write_text

FILE = "predictions.jsonl"
REQUIRED = ("arm", "id", "answers", "prediction")
REGENERATE = "dvc repro finetune_comparison"


def write_predictions(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write ``records`` (each with :data:`REQUIRED` keys) one per line, atomically."""
    return write_text(Path(path), "".join(json.dumps(dict(r)) + "\n" for r in records))


def read_predictions(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Arm -> its records, in file order.

    Raises
    ------
    DataError
        Missing file, a line that is not a JSON object or lacks a :data:`REQUIRED` key, or no record;
        the message names the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: predictions file not found; `{REGENERATE}` writes it")
    out: dict[str, list[dict[str, Any]]] = {}
    for row in iter_jsonl(p):
        missing = [k for k in REQUIRED if k not in row.record]
        if missing:
            raise DataError(f"{row.where}: missing key(s) {missing}; each line needs {', '.join(REQUIRED)} "
                            f"(`{REGENERATE}` writes a complete file)")
        if not isinstance(row.record["arm"], str) or not isinstance(row.record["id"], str | int):
            raise DataError(f"{row.where}: 'arm' must be a string and 'id' a string or number; `{REGENERATE}` "
                            "writes a valid file")
        out.setdefault(row.record["arm"], []).append(row.record)
    if not out:
        raise DataError(f"{p}: no predictions in the file; `{REGENERATE}` writes them")
    return out
