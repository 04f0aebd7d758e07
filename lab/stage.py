"""One protocol for every stage: a registered function ``run(cfg, paths) -> result``.

A stage is named after its ``params.yaml`` section. Its work is one function, registered with
:func:`stage`, that takes the section's typed config and a :class:`StagePaths` and returns a result
object (:class:`StageResult`) that writes every output file of the stage, gives its metrics and the
finding its report opens with. A notebook is then the same short shell for every stage
(parameters, :func:`lab.stages.run_stage`, show, log): nothing a stage produces is written by a
notebook cell, so what one stage hands the next has one writer in ``lab``.

This module is on the base floor: it holds the protocol and the registry only. The stage functions
live on their own floors (the studies, export) and register themselves when imported;
:mod:`lab.stages` (app floor) imports them all and looks one up.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

from lab.errors import ConfigError
from lab.paths import resolve_path
from lab.registry import Registry


@dataclass(frozen=True)
class StagePaths:
    """Where a stage runs: ``root`` (the folder of ``params.yaml``; relative paths in the config are
    relative to it) and ``out_dir`` (the stage's output folder, from the config's ``out_dir``)."""

    root: Path
    out_dir: Path

    def of(self, path: str | Path) -> Path:
        """``path`` made absolute against :attr:`root` (an absolute path is returned unchanged)."""
        return resolve_path(path, self.root)

    @classmethod
    def for_config(cls, cfg: Any, root: Path) -> StagePaths:
        """The paths of a stage whose config has an ``out_dir``."""
        root = Path(root)
        out = getattr(cfg, "out_dir", None)
        if not out:
            raise ConfigError(f"{type(cfg).__name__} has no out_dir: a stage config names its output folder")
        return cls(root=root, out_dir=resolve_path(out, root))


@runtime_checkable
class StageResult(Protocol):
    """What a stage function returns."""

    def write(self, out_dir: Path) -> None:
        """Write every output file of the stage (atomically) under ``out_dir``."""

    def metrics(self) -> dict[str, Any]:
        """The flat metrics of ``metrics.json`` (``dvc metrics show``, MLflow)."""

    def finding(self) -> str:
        """A few sentences of Markdown with the numbers: the first section of the report."""


StageFn = Callable[[Any, StagePaths], StageResult]
F = TypeVar("F", bound=Callable[..., Any])

#: Stage name (= params.yaml section) -> its run function. Filled when the modules that define the
#: stages are imported (``lab.stages.load_all``); plugins add theirs through the entry-point group
#: ``lab.stages``.
STAGES: Registry[StageFn] = Registry("stages")


def stage(name: str) -> Callable[[F], F]:
    """Register ``fn(cfg, paths)`` as the run function of stage ``name``.

    Raises
    ------
    TypeError
        When ``fn`` does not take exactly the two positional parameters ``cfg`` and ``paths``
        (extra keyword-only parameters with defaults are allowed, for tests and benchmarks).
    """

    def deco(fn: F) -> F:
        params = list(inspect.signature(fn).parameters.values())
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        others = [p for p in params if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if positional != ["cfg", "paths"] or any(p.default is p.empty for p in others if p.kind == p.KEYWORD_ONLY):
            raise TypeError(f"stage {name!r}: {fn.__module__}.{fn.__qualname__} must have the signature "
                            f"(cfg, paths, *, optional keywords), got {positional}")
        STAGES.add(name, fn)
        return fn

    return deco
