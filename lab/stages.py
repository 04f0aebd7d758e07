"""The stages, found and run (app floor): imports every module that defines one, looks one up by
name, and runs it on its ``params.yaml`` section.

Which stages exist is derived, not listed: every module of the packages in :data:`PACKAGES` is
imported, and each registers its stage with :func:`lab.stage.stage`; plugins register theirs through
the entry-point group ``lab.stages``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config import load_section
from lab.paths import project_root
from lab.stage import STAGES, StagePaths, StageResult

#: Packages whose modules define stages (each module registers its own with ``@stage``).
PACKAGES = ("lab.studies", "lab.export", "lab.redteam")


def load_all() -> list[str]:
    """Import every module of :data:`PACKAGES`; return the registered stage names."""
    for name in PACKAGES:
        pkg = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=f"{name}."):
            importlib.import_module(info.name)
    return STAGES.names()


@dataclass
class StageRun:
    """A stage run in a notebook: its typed config, paths and result."""

    name: str
    cfg: Any
    paths: StagePaths
    result: StageResult

    def log_runs(self) -> list[str]:
        """MLflow child runs of the result (one per arm, per chunker...), when it has any; their ids."""
        log = getattr(self.result, "log_runs", None)
        ids = list(log()) if log is not None else []
        if ids:
            print(f"{len(ids)} MLflow child runs logged")
        return ids


def run_stage(name: str, params_file: str | Path = "params.yaml", overrides: Mapping[str, Any] | None = None,
              *, write: bool = True, **options: Any) -> StageRun:
    """Validate section ``name`` of ``params_file`` (with dotted ``overrides``), run its stage function
    and, with ``write``, write its outputs to the section's ``out_dir``.

    Raises
    ------
    ConfigError
        Invalid params (file, key and expectation named).
    RegistryError
        No stage called ``name``; the message lists the stages that exist.
    """
    load_all()
    fn = STAGES.get(name)
    params = Path(params_file).resolve()
    root = project_root(params.parent)
    cfg = load_section(name, params, dict(overrides or {}))
    paths = StagePaths.for_config(cfg, root)
    result = fn(cfg, paths, **options)
    if write:
        result.write(paths.out_dir)
    return StageRun(name=name, cfg=cfg, paths=paths, result=result)


def shell_notebook(name: str, intro: str) -> Any:
    """The notebook of stage ``name``: its ``intro`` (Markdown: what the stage asks and how to read
    it), then the same short shell for every stage (a ``parameters`` cell, then run, show, log).
    ``notebooks/<name>.ipynb`` is this notebook (a test keeps their code cells equal)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(
        "# Parameters: papermill injects values after this cell (`lab run` validates them first).\n"
        f"params_file = \"params.yaml\"   # the params file whose `{name}` section is used\n"
        "overrides = {}                # dotted keys overriding that section, e.g. {\"seed\": 1}")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell(
        "from lab.report import show_stage\nfrom lab.stages import run_stage\n\n"
        f"run = run_stage(\"{name}\", params_file, overrides)   # runs the stage and writes its outputs\n"
        "show_stage(run)                                      # finding, configuration, tables and plots")
    log = nbformat.v4.new_code_cell("run.log_runs();")
    nb.cells = [nbformat.v4.new_markdown_cell(intro), params, body, log]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name}-{i}"
    return nb
