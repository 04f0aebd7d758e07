"""Run a parameterized notebook with papermill and track it in MLflow, in one call.

``run_notebook("notebooks/data_quality.ipynb", {"max_docs_per_corpus": 20})``:

1. loads the section of ``params.yaml`` named after the notebook (``data_quality``), applies the
   overrides and validates it (a bad key fails here, before a kernel starts);
2. executes the notebook with papermill, injecting ``params_file`` and ``overrides`` after the cell
   tagged ``parameters`` (the notebook loads the same validated config itself, so it also runs by
   hand in JupyterLab);
3. writes the executed notebook and its HTML export atomically into the stage's ``out_dir``;
4. logs an MLflow run: the resolved config as params, ``metrics.json`` as metrics, the notebook,
   HTML and plots as artifacts, lineage tags (git commit, dirty, DVC data hash, params hash).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import SECTIONS, StageConfig, load_section
from lab.errors import LabError
from lab.io import write_text
from lab.paths import project_root


class NotebookFailed(LabError):
    """The notebook raised; the partly executed copy is kept for inspection."""


@dataclass
class NotebookRun:
    """What :func:`run_notebook` produced."""

    notebook: Path
    html: Path | None
    out_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None


def _atomic_replace(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def export_html(notebook: Path, html: Path) -> Path:
    """Render an executed notebook to standalone HTML (written atomically)."""
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return write_text(html, body)


def run_notebook(
    notebook: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    section: str | None = None,
    params_file: str | Path = "params.yaml",
    out_dir: str | Path | None = None,
    track: bool = True,
    kernel: str = "python3",
    progress: bool = True,
) -> NotebookRun:
    """Execute ``notebook`` with the validated params of its section and track the run.

    Parameters
    ----------
    notebook:
        Path of the ``.ipynb`` (it needs a cell tagged ``parameters``).
    overrides:
        Dotted keys within the section (``{"max_docs_per_corpus": 20}``). For a notebook with no
        config section they are passed to papermill as plain parameters.
    section:
        ``params.yaml`` section; defaults to the notebook's stem.
    out_dir:
        Where the executed notebook and HTML go; defaults to the config's ``out_dir`` or
        ``results/<section>``.

    Raises
    ------
    ConfigError
        Before execution, when the params are invalid.
    NotebookFailed
        When a cell raises; the partial notebook is saved as ``<name>.failed.ipynb``.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    nb_path = Path(notebook).resolve()
    if not nb_path.is_file():
        raise LabError(f"{notebook}: notebook not found")
    section = section or nb_path.stem
    params_path = Path(params_file).resolve()
    root = project_root(params_path.parent)
    overrides = dict(overrides or {})

    cfg: StageConfig | None = None
    if section in SECTIONS:
        if out_dir is not None and "out_dir" in SECTIONS.get(section).model_fields:
            overrides.setdefault("out_dir", str(Path(out_dir).resolve()))  # the notebook writes there too
        cfg = load_section(section, params_path, overrides)
        parameters: dict[str, Any] = {"params_file": str(params_path), "overrides": overrides}
        config_dump = cfg.model_dump(mode="json")
    else:
        parameters = overrides
        config_dump = overrides
    out = Path(out_dir) if out_dir else Path(getattr(cfg, "out_dir", None) or f"results/{section}")
    out = out if out.is_absolute() else root / out
    out.mkdir(parents=True, exist_ok=True)
    final_nb = out / f"{nb_path.stem}.ipynb"
    tmp_nb = out / f".{nb_path.stem}.running.ipynb"

    nb_rel = str(nb_path.relative_to(root)) if nb_path.is_relative_to(root) else str(nb_path)

    def execute() -> NotebookRun:
        try:
            pm.execute_notebook(
                str(nb_path), str(tmp_nb), parameters=parameters, cwd=str(root),
                kernel_name=kernel, progress_bar=progress, log_output=False,
            )
        except PapermillExecutionError as exc:
            failed = out / f"{nb_path.stem}.failed.ipynb"
            os.replace(tmp_nb, failed)
            raise NotebookFailed(
                f"{nb_path.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}\n"
                f"The partly executed notebook is in {failed}"
            ) from None
        _atomic_replace(tmp_nb, final_nb)
        html = export_html(final_nb, out / f"{nb_path.stem}.html")
        return NotebookRun(notebook=final_nb, html=html, out_dir=out)

    if not track:
        return execute()

    from lab.tracking import PARENT_RUN_ENV, log_metrics_file, stage_run

    params_hash = cfg.params_hash() if cfg is not None else None
    # The run is open while the notebook executes: its id reaches the kernel through the
    # environment, so the notebook can log child runs (one per configuration) under it.
    with stage_run(section, params=config_dump, params_hash=params_hash, root=root,
                   extra_tags={"lab.notebook": nb_rel}) as run:
        import mlflow

        previous = os.environ.get(PARENT_RUN_ENV)
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        try:
            result = execute()
        finally:
            if previous is None:
                os.environ.pop(PARENT_RUN_ENV, None)
            else:
                os.environ[PARENT_RUN_ENV] = previous
        metrics_file = out / "metrics.json"
        if metrics_file.is_file():
            result.metrics = log_metrics_file(metrics_file)
            mlflow.log_artifact(str(metrics_file))
        stats_file = out / "run_stats.json"  # machine-state figures (cache counters): MLflow, not git
        if stats_file.is_file():
            result.metrics.update(log_metrics_file(stats_file))
        mlflow.log_artifact(str(final_nb), artifact_path="notebook")
        mlflow.log_artifact(str(result.html), artifact_path="notebook")
        mlflow.log_text(json.dumps(config_dump, indent=2, sort_keys=True), "config.json")
        plots = out / "plots"
        if plots.is_dir():
            mlflow.log_artifacts(str(plots), artifact_path="plots")
        result.run_id = run.info.run_id
    return result

