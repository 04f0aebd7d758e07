"""The judges' choice: ``<judge_eval out_dir>/judges.json``, written by the judge stage, read by
whoever needs "the default judge" (``lab judge calibrate --judge default``, the benchmarks).

The file holds the stage's default judge per task, the thresholds it chose for prompted judges on
validation items, the validation kappas it chose on and the diagnostic guard that vetoed length
shortcuts (:mod:`lab.studies.judge`). Next to it, the stage keeps its trained judges, one folder
each: :func:`models_dir`, and its calibration report (:data:`CALIBRATION`: every judge's agreement
with the human labels of the evaluation items). This module is the only one that knows the files'
names and layout; :func:`agreement` reads a judge's calibrated agreement (what a verdict of that
judge is worth) from them.

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
#: The stage's calibration report beside the choice: ``"<task>/<judge>"`` -> its agreement on the
#: evaluation items (``kappa``, ``kappa_ci``, ``n``, ``rubric``, ``agreement_bar``, ...).
CALIBRATION = "calibration.json"


@dataclass(frozen=True)
class JudgesChoice:
    """The judge stage's choice, as :func:`read` found it."""

    path: Path
    default: dict[str, str]                                    # task -> judge name
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)   # judge -> task -> threshold
    data: dict[str, Any] = field(default_factory=dict)         # the whole file (the stage's evidence)


@dataclass(frozen=True)
class Agreement:
    """A judge's calibrated agreement with human labels, as the judge stage measured it.

    ``judge`` is the judge whose agreement this is (a claim-level judge reports its pair scorer's
    whole-answer agreement: then ``judge`` names the scorer); ``split`` is ``evaluation`` (the held-out
    items, from :data:`CALIBRATION`, with its 95% CI) or ``validation`` (the items the default was
    chosen on, from the choice; no CI); ``bar``: the stage's agreement bar; ``rubric``: the judge's
    rubric id or model hash as calibrated; ``source``: the file it was read from."""

    judge: str
    task: str
    kappa: float
    split: str
    n: int | None = None
    kappa_ci: tuple[float, float] | None = None
    bar: float | None = None
    rubric: str | None = None
    source: str = ""

    @property
    def below_bar(self) -> bool | None:
        """Whether kappa is under the stage's agreement bar (None: no bar recorded)."""
        return None if self.bar is None else self.kappa < self.bar

    def record(self) -> dict[str, Any]:
        """The agreement as a JSON-ready dict (what a verdict carries)."""
        return {"judge": self.judge, "task": self.task, "kappa": self.kappa, "split": self.split, "n": self.n,
                "kappa_ci": list(self.kappa_ci) if self.kappa_ci else None, "bar": self.bar,
                "below_bar": self.below_bar, "rubric": self.rubric, "source": self.source}


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


def agreement(out_dir: str | Path, task: str, name: str) -> Agreement | None:
    """The calibrated agreement of judge ``name`` on ``task`` in the judge stage's ``out_dir``: its
    kappa on the evaluation items (:data:`CALIBRATION`) when the report has it, else its validation
    kappa from the choice; None when neither file names it (an uncalibrated judge).

    Raises
    ------
    DataError
        A file that is there but unreadable: the choice as :func:`read` refuses it, or a report that
        is not JSON or whose entry has no numeric kappa.
    """
    out = Path(out_dir)
    bar: float | None = None
    choice = read(path(out)) if path(out).is_file() else None
    if choice is not None and isinstance(choice.data.get("agreement_bar"), int | float):
        bar = float(choice.data["agreement_bar"])
    report = out / CALIBRATION
    if report.is_file():
        try:
            entries = json.loads(report.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{report}: not valid JSON ({exc.msg} at line {exc.lineno}); `{REGENERATE}` "
                            f"rewrites it") from None
        entry = entries.get(f"{task}/{name}") if isinstance(entries, dict) else None
        if entry is not None:
            kappa = entry.get("kappa") if isinstance(entry, dict) else None
            if not isinstance(kappa, int | float):
                raise DataError(f"{report}: entry {task}/{name} has no numeric kappa; `{REGENERATE}` rewrites it")
            ci = entry.get("kappa_ci")
            entry_bar = entry.get("agreement_bar")
            return Agreement(name, task, float(kappa), "evaluation", n=entry.get("n"),
                             kappa_ci=(float(ci[0]), float(ci[1])) if isinstance(ci, list) and len(ci) == 2 else None,
                             bar=float(entry_bar) if isinstance(entry_bar, int | float) else bar,
                             rubric=entry.get("rubric"), source=str(report))
    if choice is not None:
        kappas = (choice.data.get("validation_kappa") or {}).get(task)
        if isinstance(kappas, dict) and isinstance(kappas.get(name), int | float):
            return Agreement(name, task, float(kappas[name]), "validation", bar=bar, source=str(choice.path))
    return None
