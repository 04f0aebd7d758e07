"""``lab init``: a new lab project for a team's own documents.

:func:`init_project` writes a folder that answers the seed's questions for the documents it is
given: a git repository with DVC initialised, the documents copied into ``data/docs`` and tracked
by DVC (a snapshot you can audit; ``--link`` uses the folder in place instead), lab's labelled
reference sets the judges train and calibrate on (``data/reference``, with their licences), a
``params.yaml`` whose sections point at the documents (the template is the example corpus's
profile, :data:`TEMPLATE`), the same ``dvc.yaml`` stages as lab's own pipeline (ingest ->
data_quality -> testset -> chunking_study -> retrieval_sweep -> finetune_comparison -> judge_eval
-> export; their ``deps`` derived by :mod:`lab.deps`), the stage notebooks (the one shell every
stage shares, :func:`lab.stages.shell_notebook`), and a README of its own.

The project is built in a hidden sibling folder and renamed into place at the end, so a failure
leaves nothing half-made; an existing non-empty folder is never written into. Source folders are
only read: a read-only folder works, symlinked folders are not followed (a symlink loop cannot
recurse) and symlinked files are copied as the files they point to.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from lab.errors import ConfigError, LabError

#: The project template (package data): params.yaml, dvc.yaml, experiments/, README.md, gitignore.
TEMPLATE = Path(__file__).parent / "templates" / "project"
#: The stages of a new project, in pipeline order.
STAGES = ("ingest", "data_quality", "testset", "chunking_study", "retrieval_sweep", "finetune_comparison",
          "judge_eval", "export")
#: lab's labelled reference sets a project's judges need (relative to lab's ``data/``), copied into
#: ``data/reference/``; each folder keeps its licence and source lines (README there).
REFERENCE_FILES = ("halueval/qa_train.jsonl", "halueval/qa_grounded.dev250.jsonl", "halueval/general_data.dev1000.jsonl")
REFERENCE_README = """# Reference sets (copied by `lab init` from lab's data)

| file | what | source | licence |
| --- | --- | --- | --- |
| `halueval/qa_train.jsonl` | HaluEval QA seeds (knowledge, question, right and hallucinated answers): the local judge trains on them | HaluEval `data/qa_data.json` lines 500-999 (github.com/RUCAIBox/HaluEval) | MIT; queries derived from public QA data (research use) |
| `halueval/qa_grounded.dev250.jsonl` | HaluEval QA, 250 seeds: the judges' calibration | HaluEval `generation/qa/qa_one-turn_data.json` @ b7253db | MIT |
| `halueval/general_data.dev1000.jsonl` | HaluEval general, human labels: the general-task calibration | HaluEval `data/general_data.json` @ b7253db, first 1,000 | MIT; queries derived from Alpaca (research use) |
"""


class InitError(LabError):
    """The project cannot be created as asked (the message says what and how to fix it)."""


@dataclass
class InitReport:
    """What :func:`init_project` made."""

    root: Path
    documents: int
    skipped: list[str] = field(default_factory=list)   # symlinked folders not followed, unreadable files
    questions: str | None = None
    git: bool = True

    def summary(self) -> str:
        lines = [f"lab project at {self.root}: {self.documents} documents"
                 + (f" (skipped {len(self.skipped)}: {', '.join(self.skipped[:5])})" if self.skipped else ""),
                 f"next: cd {json.dumps(str(self.root), ensure_ascii=False)} && dvc repro"]
        return "\n".join(lines)


def _lab_data_dir() -> Path:
    """lab's own ``data/`` folder (beside the package in a lab checkout)."""
    return Path(__file__).resolve().parent.parent / "data"


def _copy_tree(src: Path, dest: Path, skipped: list[str]) -> int:
    """Copy the files under ``src`` into ``dest`` (folders created, file modes not copied: a
    read-only source gives a writable copy); symlinked folders are listed in ``skipped``, not
    followed. Returns the number of files copied."""
    n = 0
    for folder, dirs, files in os.walk(src, followlinks=False):
        here = Path(folder)
        for d in list(dirs):
            if (here / d).is_symlink():
                skipped.append(f"{(here / d).relative_to(src)} (a symlinked folder: not followed)")
                dirs.remove(d)
        target = dest / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            path = here / name
            try:
                shutil.copyfile(path, target / name)   # follows a symlinked file
                n += 1
            except OSError as exc:
                skipped.append(f"{path.relative_to(src)} ({exc.strerror or exc})")
    return n


def _yaml_str(value: str | None) -> str:
    """A YAML scalar for ``value`` (JSON strings are valid YAML; null for None)."""
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise InitError(f"`{' '.join(cmd)}` failed in {cwd}: {(res.stderr or res.stdout).strip()[-600:]}")


def _git_identity(cwd: Path) -> list[str]:
    """``-c user.name=... -c user.email=...`` when git has no identity configured (a fresh machine)."""
    res = subprocess.run(["git", "config", "user.email"], cwd=cwd, capture_output=True, text=True)
    return [] if res.stdout.strip() else ["-c", "user.name=lab init", "-c", "user.email=lab-init@localhost"]


def render_params(docs: str, questions: str | None, *, n_questions: int = 100, registered_model: str = "lab-rag") -> str:
    """The project's ``params.yaml``: the template with the documents' and questions' paths."""
    text = (TEMPLATE / "params.yaml").read_text(encoding="utf-8")
    return Template(text).substitute(docs=_yaml_str(docs), questions=_yaml_str(questions),
                                     n_questions=str(int(n_questions)), registered_model=_yaml_str(registered_model))


def write_notebooks(root: Path, stages: tuple[str, ...] = STAGES) -> list[Path]:
    """``notebooks/<stage>.ipynb`` for each stage: the shell every lab stage shares, opened by the
    stage's question (its module docstring's first paragraph)."""
    import nbformat

    from lab.stage import STAGES as REGISTERED
    from lab.stages import load_all, shell_notebook

    load_all()
    out = []
    for name in stages:
        fn = REGISTERED.get(name)
        import sys

        doc = (sys.modules[fn.__module__].__doc__ or "").strip().split("\n\n")[0]
        nb = shell_notebook(name, f"# {name}\n\n{doc}")
        path = root / "notebooks" / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        out.append(path)
    return out


def init_project(dest: str | Path, docs: str | Path, questions: str | Path | None = None, *,
                 link: bool = False, git: bool = True, n_questions: int = 100,
                 reference_dir: str | Path | None = None) -> InitReport:
    """Create the lab project ``dest`` for the documents in ``docs``.

    Parameters
    ----------
    dest:
        The new project folder; must not exist or be empty.
    docs:
        A folder of documents (PDF, HTML, DOCX, Markdown, text; walked recursively) or one file.
    questions:
        Optional: the team's own questions (CSV or JSONL with ``question``, ``answer``, optionally
        ``source``), copied to ``data/questions.<ext>`` and located in the documents by the testset stage.
    link:
        Use ``docs`` in place (an absolute path in ``params.yaml``) instead of copying it into
        ``data/docs``.
    git:
        ``git init`` + ``dvc init`` + ``dvc add data/docs`` + a first commit (off: files only).
    n_questions:
        The synthetic test set's size (``testset.n``).
    reference_dir:
        Where lab's reference sets are (default: the ``data/`` folder of this lab checkout).

    Raises
    ------
    InitError
        ``dest`` is not empty, ``docs`` or ``questions`` does not exist, the reference sets are
        missing, or git/DVC fail (the message names the command and its error).
    """
    dest = Path(dest).expanduser()
    src = Path(docs).expanduser()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InitError(f"{dest}: exists and is not an empty folder; choose a new folder for the project")
    if not src.exists():
        raise InitError(f"--docs {src}: no such file or folder")
    qfile = Path(questions).expanduser() if questions else None
    if qfile is not None and not qfile.is_file():
        raise InitError(f"--questions {qfile}: no such file (a CSV or JSONL with question, answer, source)")
    ref = Path(reference_dir) if reference_dir else _lab_data_dir()
    missing = [f for f in REFERENCE_FILES if not (ref / f).is_file()]
    if missing:
        raise InitError(f"lab's reference sets are missing from {ref} ({', '.join(missing)}): run "
                        f"`dvc pull` in the lab checkout, or pass --reference DIR")

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.lab-init"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        report = _build(tmp, src, qfile, ref, link=link, git=git, n_questions=n_questions, name=dest.name)
        if dest.exists():
            dest.rmdir()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.root = dest
    return report


def start_review(root: Path) -> Path | None:
    """Write the empty review decisions file beside the project's test set (``judge_eval.reviewed``):
    the stages that read the test set depend on it from the first ``dvc repro`` (:mod:`lab.deps`), so
    the reviewer's first decision reruns the fine-tune arms on the reviewed split and the judges'
    agreement with the review, and nothing else."""
    from lab.config import load_section
    from lab.data.review_file import FORMAT, VERSION, review_path
    from lab.versioned import write_versioned

    cfg = load_section("judge_eval", root / "params.yaml", check_paths=False)
    if cfg.reviewed is None:
        return None
    path = review_path(cfg.resolve(cfg.reviewed.questions, root))
    path.parent.mkdir(parents=True, exist_ok=True)
    # testset_sha256 "": made on no version of the test set (the review app writes the hash it decides on)
    return write_versioned(path, FORMAT, VERSION, {"testset_sha256": "", "decisions": []})


def _build(root: Path, src: Path, qfile: Path | None, ref: Path, *, link: bool, git: bool,
           n_questions: int, name: str) -> InitReport:
    from lab import deps
    from lab.io import write_text

    skipped: list[str] = []
    if link:
        docs_param = str(src.resolve())
        n_docs = sum(1 for p in src.rglob("*") if p.is_file()) if src.is_dir() else 1
    else:
        target = root / "data" / "docs"
        if src.is_dir():
            n_docs = _copy_tree(src, target, skipped)
        else:
            target.mkdir(parents=True)
            shutil.copyfile(src, target / src.name)
            n_docs = 1
        docs_param = "data/docs"
    if n_docs == 0:
        raise InitError(f"--docs {src}: no files found")
    questions_param = None
    if qfile is not None:
        questions_param = f"data/questions{qfile.suffix.lower() or '.csv'}"
        shutil.copyfile(qfile, root / questions_param)
    for f in REFERENCE_FILES:
        (root / "data" / "reference" / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ref / f, root / "data" / "reference" / f)
    write_text(root / "data" / "reference" / "README.md", REFERENCE_README)

    write_text(root / "params.yaml", render_params(docs_param, questions_param, n_questions=n_questions,
                                                   registered_model=f"{name}-rag"))
    shutil.copytree(TEMPLATE / "experiments", root / "experiments")
    shutil.copyfile(TEMPLATE / "dvc.yaml", root / "dvc.yaml")
    write_text(root / ".gitignore", (TEMPLATE / "gitignore").read_text(encoding="utf-8"))
    write_text(root / "README.md", Template((TEMPLATE / "README.md").read_text(encoding="utf-8")).substitute(
        name=name, docs_shown=src if link else "data/docs", date=_dt.date.today().isoformat()))
    write_notebooks(root)
    start_review(root)
    try:
        deps.write(root)
    except ConfigError as exc:
        raise InitError(f"the new project's dvc.yaml: {exc}") from None

    if git:
        _run(["git", "init", "-q"], root)
        _run(["dvc", "init", "-q"], root)
        _run(["dvc", "config", "core.analytics", "false"], root)
        if not link:
            _run(["dvc", "add", "-q", "data/docs"], root)
        _run(["git", "add", "-A"], root)
        _run(["git", *_git_identity(root), "commit", "-q", "-m", f"lab init: a lab project for {src.name}"], root)
    return InitReport(root=root, documents=n_docs, skipped=skipped, questions=questions_param, git=git)
