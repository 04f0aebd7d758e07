"""The judges' choice: ``<judge_eval out_dir>/judges.json``, written by the judge stage, read by
whoever needs "the default judge" (``lab judge calibrate --judge default``, the benchmarks).

The file holds the stage's default judge per task, the thresholds it chose for prompted judges on
validation items, the validation kappas it chose on and the diagnostic guard that vetoed length
shortcuts (:mod:`lab.studies.judge`). Next to it, the stage keeps its trained judges, one folder
each: :func:`models_dir`. This module is the only one that knows the file's name and layout.

``format`` and ``version`` name the layout; :func:`read` refuses any other (an older file, or a
file that is not a judges' choice) with the file's path and the command that rewrites it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import DataError
from lab.versioned import header, read_versioned

#: The file's name inside the judge stage's ``out_dir``.
FILE = "judges.json"
#: What the file is (``format``) and its layout's version: raise VERSION when a key changes meaning.
FORMAT = "lab.judges"
VERSION = 1
#: How to get a current file.
REGENERATE = "dvc repro judge_eval"


@dataclass(frozen=True)
class JudgesChoice:
    """The judge stage's choice, as :func:`read` found it."""

    path: Path
    default: dict[str, str]                                    # task -> judge name
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)   # judge -> task -> threshold
    data: dict[str, Any] = field(default_factory=dict)         # the whole file (the stage's evidence)


def path(out_dir: str | Path) -> Path:
    """Where the judge stage whose output folder is ``out_dir`` writes its choice."""
    return Path(out_dir) / FILE


def models_dir(out_dir: str | Path) -> Path:
    """The folder of the judge stage's trained judges (``<models_dir>/<name>``, each with ``meta.json``)."""
    return Path(out_dir) / "models"


def dumps(choices: Mapping[str, Any]) -> str:
    """The file's text for ``choices`` (the stage's dict: ``default``, ``thresholds``, ...), with
    ``format`` and ``version`` added; keys sorted, so equal choices give equal bytes."""
    clash = {"format", "version"} & set(choices)
    if clash:
        raise ValueError(f"judges' choice: {sorted(clash)} are the file's own keys, not choices")
    return json.dumps({**header(FORMAT, VERSION), **choices}, indent=2, sort_keys=True) + "\n"


def write(out_dir: str | Path, choices: Mapping[str, Any]) -> Path:
    """Write ``choices`` to :func:`path` (atomically); returns the file."""
    from lab.io import write_text

    return write_text(path(out_dir), dumps(choices))


def read(file: str | Path) -> JudgesChoice:
    """The judges' choice in ``file``.

    Raises
    ------
    DataError
        The file is missing, is not JSON, is not a judges' choice (``format``), has another layout
        version, or lacks the default judges; each message names the file and says to run
        ``dvc repro judge_eval``.
    """
    p = Path(file)
    data = read_versioned(p, FORMAT, VERSION, REGENERATE)
    default = data.get("default")
    if not isinstance(default, dict) or not all(isinstance(v, str) for v in default.values()):
        raise DataError(f"{p}: key 'default' must map each task to a judge name; `{REGENERATE}` rewrites it")
    thresholds = data.get("thresholds") or {}
    if not isinstance(thresholds, dict) or not all(
            isinstance(t, dict) and all(isinstance(v, int | float) for v in t.values()) for t in thresholds.values()):
        raise DataError(f"{p}: key 'thresholds' must map judge -> task -> threshold; `{REGENERATE}` rewrites it")
    body = {k: v for k, v in data.items() if k not in ("format", "version")}
    return JudgesChoice(p, dict(default), {k: dict(v) for k, v in thresholds.items()}, body)
