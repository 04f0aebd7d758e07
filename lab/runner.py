"""Run a parameterized notebook with papermill and track it in MLflow, in one call.

``run_notebook("notebooks/data_quality.ipynb", {"max_docs_per_corpus": 20})``:

1. loads the section of ``params.yaml`` named after the notebook (``data_quality``), applies the
   overrides and validates it (a bad key fails here, before a kernel starts);
2. executes the notebook with papermill, injecting ``params_file`` and ``overrides`` after the cell
   tagged ``parameters`` (the notebook loads the same validated config itself, so it also runs by
   hand in JupyterLab);
3. streams the kernel's progress to the terminal: the kernel (and its children) write standard
   error to ``<out_dir>/<stage>.log`` (:mod:`lab.progress`), which a thread here echoes, so bars,
   warnings and library noise reach the person watching and stay out of the report;
4. writes the executed notebook and its HTML export (code hidden: the report shows results)
   atomically into the stage's ``out_dir``;
5. logs an MLflow run: the resolved config as params, the ``metrics.json`` this run wrote as
   metrics, the notebook, HTML, log and plots as artifacts, lineage tags (git commit, dirty, DVC
   data hash, params hash) and the data the stage read as MLflow dataset inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.config import SECTIONS, StageConfig, load_section
from lab.errors import LabError
from lab.io import write_text
from lab.paths import project_root, resolve_path
from lab.progress import LOG_ENV
from lab.stopping import ENGINE, Interrupted, interruptible, recovery_hint


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
    log: Path | None = None


def _atomic_replace(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def export_html(notebook: Path, html: Path, *, show_code: bool = False) -> Path:
    """Render an executed notebook to standalone HTML (written atomically).

    The HTML is the study's report: code cells and prompts are hidden unless ``show_code`` (the
    ``.ipynb`` keeps them), so it reads as text, tables and plots.
    """
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=not show_code, exclude_input_prompt=not show_code,
                            exclude_output_prompt=not show_code)
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    return write_text(html, offline_html(body))


#: <script src="http(s)://..."></script> tags nbconvert's template adds (require.js, MathJax from a CDN).
_REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE)


def offline_html(body: str) -> str:
    """The report without remote scripts, so that it opens offline with nothing to fetch: the
    template's CSS is inline already and plots are embedded as data URIs; require.js (for widgets)
    and MathJax (for LaTeX) are dropped, which these reports do not use."""
    return _REMOTE_SCRIPT.sub("", body)


#: Cursor movements of nested tqdm bars: meaningless outside a terminal.
_CURSOR = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _as_lines(text: str, at_line_start: bool) -> tuple[str, bool]:
    """Terminal output made readable in a file: every carriage return (a bar redrawing itself)
    starts a new line, cursor movements and blank or spaces-only lines (a bar erasing itself) go.
    ``at_line_start`` carries across chunks whether the last character written ended a line."""
    out = []
    for line in _CURSOR.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).splitlines(keepends=True):
        if not line.strip():
            if line.endswith("\n") and not at_line_start:  # ends a partial line written before
                out.append("\n")
                at_line_start = True
            continue
        out.append(line)
        at_line_start = line.endswith("\n")
    return "".join(out), at_line_start


class _Tail(threading.Thread):
    """Echo what is appended to ``path`` onto ``out`` until stopped (then drain what is left).

    On a terminal the bytes go through as written (tqdm's carriage returns redraw one line); into a
    file or pipe (CI, ``dvc repro > log``) carriage returns become line ends, and bars update only
    every ``LAB_PROGRESS_INTERVAL`` seconds, so the log stays readable.
    """

    def __init__(self, path: Path, out: Any) -> None:
        super().__init__(daemon=True, name="lab-progress-tail")
        self.path, self.out = path, out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self._halt = threading.Event()

    def run(self) -> None:
        at_line_start = True
        with open(self.path, "rb") as fh:
            while True:
                stopping = self._halt.is_set()
                chunk = fh.read()
                if chunk:
                    text = chunk.decode("utf-8", errors="replace")
                    if not self.tty:
                        text, at_line_start = _as_lines(text, at_line_start)
                    try:
                        self.out.write(text)
                        self.out.flush()
                    except (OSError, ValueError):
                        return
                if stopping:
                    if not self.tty and not at_line_start:
                        self.out.write("\n")
                    return
                self._halt.wait(0.2)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


@contextlib.contextmanager
def _progress_channel(log: Path) -> Iterator[None]:
    """The kernel writes its standard error to ``log``; a thread echoes it to this process's stderr."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    tail = _Tail(log, sys.stderr)
    saved = {k: os.environ.get(k) for k in (LOG_ENV, "LAB_PROGRESS_INTERVAL")}
    os.environ[LOG_ENV] = str(log)
    os.environ.setdefault("LAB_PROGRESS_INTERVAL", "1" if tail.tty else "15")
    tail.start()
    try:
        yield
    finally:
        tail.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _ipc_kernel() -> Iterator[Any]:
    """A traitlets config that connects papermill to its kernel over Unix sockets in a private
    temp folder instead of TCP ports: nothing listens on the network, and the kernel has no
    reason to warn (on every run) that its TCP traffic is unencrypted."""
    import shutil
    import tempfile

    from traitlets.config import Config

    folder = tempfile.mkdtemp(prefix="lab-kernel-")
    try:
        yield Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(folder, "kernel")}})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    out = resolve_path(out_dir or getattr(cfg, "out_dir", None) or f"results/{section}", root)
    out.mkdir(parents=True, exist_ok=True)
    final_nb = out / f"{nb_path.stem}.ipynb"
    tmp_nb = out / f".{nb_path.stem}.running.ipynb"

    nb_rel = str(nb_path.relative_to(root)) if nb_path.is_relative_to(root) else str(nb_path)

    log = out / f"{nb_path.stem}.log"

    def execute() -> NotebookRun:
        t0 = time.time()
        if progress:
            print(f"[lab run] {section}: executing {nb_rel} (progress below; log: {_shown(log, root)})",
                  file=sys.stderr, flush=True)
        try:
            with _progress_channel(log), _ipc_kernel() as kernel_config:
                interruptible(lambda on_kernel: pm.execute_notebook(
                    str(nb_path), str(tmp_nb), parameters=parameters, cwd=str(root), engine_name=ENGINE,
                    kernel_name=kernel, progress_bar=False, log_output=False, config=kernel_config,
                    on_kernel=on_kernel,
                ), what=f"{section}: {nb_rel}", partial=tmp_nb, hint=recovery_hint(section, root))
        except PapermillExecutionError as exc:
            failed = out / f"{nb_path.stem}.failed.ipynb"
            os.replace(tmp_nb, failed)
            raise NotebookFailed(
                f"{nb_path.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}\n"
                f"The partly executed notebook is in {failed}; its log is {log}"
            ) from None
        _atomic_replace(tmp_nb, final_nb)
        html = export_html(final_nb, out / f"{nb_path.stem}.html")
        if progress:
            print(f"[lab run] {section}: done in {time.time() - t0:.0f} s -> {_shown(html, root)}",
                  file=sys.stderr, flush=True)
        return NotebookRun(notebook=final_nb, html=html, out_dir=out, log=log)

    if not track:
        return execute()

    params_hash = cfg.params_hash() if cfg is not None else None
    try:
        return _tracked(execute, section, cfg, config_dump, params_hash, root, nb_rel, out)
    except Interrupted as exc:
        _mark_killed(exc)
        raise


def _mark_killed(exc: Interrupted) -> None:
    """The MLflow run of an interrupted stage ends KILLED (not FAILED), tagged with the signal."""
    run_id = getattr(exc, "run_id", None)
    if not run_id:
        return
    import signal

    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    client.set_tag(run_id, "lab.interrupted", signal.Signals(exc.signum).name)
    client.set_terminated(run_id, "KILLED")


def _tracked(execute: Any, section: str, cfg: StageConfig | None, config_dump: Any, params_hash: str | None,
             root: Path, nb_rel: str, out: Path) -> NotebookRun:
    from lab.tracking import PARENT_RUN_ENV, log_dataset_inputs, log_metrics_file, stage_run

    # The run is open while the notebook executes: its id reaches the kernel through the
    # environment, so the notebook can log child runs (one per configuration) under it.
    with stage_run(section, params=config_dump, params_hash=params_hash, root=root,
                   extra_tags={"lab.notebook": nb_rel}) as run:
        import mlflow

        if cfg is not None:
            log_dataset_inputs(_dataset_inputs(cfg, root), root)
        previous = os.environ.get(PARENT_RUN_ENV)
        os.environ[PARENT_RUN_ENV] = run.info.run_id
        started_ns = time.time_ns()
        try:
            result = execute()
        except Interrupted as exc:
            exc.run_id = run.info.run_id  # type: ignore[attr-defined]
            raise
        finally:
            if previous is None:
                os.environ.pop(PARENT_RUN_ENV, None)
            else:
                os.environ[PARENT_RUN_ENV] = previous
        metrics_file = out / "metrics.json"
        if _written_since(metrics_file, started_ns):
            result.metrics = log_metrics_file(metrics_file)
            mlflow.log_artifact(str(metrics_file))
        elif metrics_file.is_file():
            print(f"[lab run] {section}: {_shown(metrics_file, root)} was not written by this run "
                  "(left by an earlier one); not logged", file=sys.stderr)
        stats_file = out / "run_stats.json"  # machine-state figures (cache counters): MLflow, not git
        if _written_since(stats_file, started_ns):
            result.metrics.update(log_metrics_file(stats_file))
        mlflow.log_artifact(str(result.notebook), artifact_path="notebook")
        mlflow.log_artifact(str(result.html), artifact_path="notebook")
        if result.log is not None and result.log.is_file():
            mlflow.log_artifact(str(result.log), artifact_path="notebook")
        mlflow.log_text(json.dumps(config_dump, indent=2, sort_keys=True), "config.json")
        plots = out / "plots"
        if plots.is_dir():
            mlflow.log_artifacts(str(plots), artifact_path="plots")
        result.run_id = run.info.run_id
    return result



def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _written_since(path: Path, started_ns: int) -> bool:
    """``path`` exists and was (re)written after ``started_ns`` (this run wrote it)."""
    try:
        return path.stat().st_mtime_ns >= started_ns - 2_000_000_000  # 2 s: coarse file-system clocks
    except FileNotFoundError:
        return False


def _dataset_inputs(cfg: StageConfig, root: Path) -> dict[str, Path]:
    """Name -> path of every file or folder the stage's config names (its data), for MLflow."""
    return {key: cfg.resolve(value, root) for key, value in cfg.paths().items()}
