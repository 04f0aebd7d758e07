"""Stage dependencies derived from what a stage really reads, never listed by hand.

A stage ``lab run notebooks/<stage>.ipynb`` depends on

- the notebook itself;
- every ``lab`` source file it can execute: the import closure (:func:`lab.imports.closure`) of the
  notebook's imports, of the module that defines the stage's run function (:mod:`lab.stages` finds
  it by import, which the closure of the notebook's imports cannot see) and of :mod:`lab.runner`,
  which executes it and tracks the run;
- every file or folder its ``params.yaml`` section names (``StageConfig.paths()``: corpora, QA sets,
  an upstream stage's ``winner.json``), and, for a section naming an experiment file, the data that
  experiment's ``dataset`` reads;
- the review decisions beside a named test set CSV (``testset.csv`` -> ``testset.review.json``),
  where that file exists: the studies read a test set with its review applied
  (:func:`lab.data.qa.load_reviewed_testset`), so a reviewer's decision reruns the stages
  that read it. ``lab init`` writes an empty decisions file, so a project's edge exists from the start.

:func:`stage_deps` computes that list; ``lab dvc-deps --write`` rewrites the ``deps:`` of every
stage in ``dvc.yaml`` from it (keeping everything else of the file, comments included) and
``lab dvc-deps --check`` (and ``tests/test_deps.py``) fails when the file has drifted.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

from lab.config.loader import load_yaml, read_yaml
from lab.errors import ConfigError
from lab.data.review_file import review_path
from lab.imports import LAB_DIR, closure, notebook_imports

#: Modules every stage runs besides its notebook's imports.
RUNNER_MODULES = ("lab.runner",)


def repo_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding ``.git`` or ``.dvc`` (the repository), or None."""
    here = Path(os.path.abspath(start))
    return next((f for f in (here, *here.parents) if (f / ".git").exists() or (f / ".dvc").exists()), None)


def _rel(path: Path, root: Path) -> str:
    """``path`` as ``dvc.yaml`` names it: relative to ``root`` when it lies in the same repository
    (``../../data/docs`` from a project in a subfolder), absolute when it lies outside (a team's
    document folder used in place)."""
    # absolute but not resolved: a symlinked data folder inside the project stays ``data/...``
    p, r = Path(os.path.abspath(path)), Path(os.path.abspath(root))
    if p.is_relative_to(r):
        return p.relative_to(r).as_posix()
    repo = repo_root(r)
    if repo is not None and p.is_relative_to(repo):
        return Path(os.path.relpath(p, r)).as_posix()
    return str(p)


def code_deps_root(root: Path, lab_dir: Path = LAB_DIR) -> Path | None:
    """The folder at or above ``root`` whose ``lab`` is the package running now: lab's own
    repository (the project itself, or a project in one of its subfolders). Its stages then depend
    on the lab sources they run. None for a project elsewhere (``lab init``), where lab is an
    installed package and its version, not its files, names the code."""
    here = Path(os.path.abspath(root))
    real = lab_dir.resolve()
    return next((f for f in (here, *here.parents) if (f / "lab").is_dir() and (f / "lab").resolve() == real), None)


def stage_notebook(cmd: str) -> str | None:
    """The notebook a stage command runs (``lab run NOTEBOOK ...``), or None for other commands."""
    args = shlex.split(cmd)
    if len(args) >= 3 and Path(args[0]).name == "lab" and args[1] == "run":
        return args[2]
    return None


def output_dirs(root: Path, params_file: str = "params.yaml") -> dict[str, str]:
    """Section -> its ``out_dir`` (resolved, relative to ``root``), for every section that has one."""
    from lab.config import SECTIONS

    return {name: _rel(cfg.resolve(cfg.out_dir, root), root)
            for name in SECTIONS.names()
            for cfg in [_load_if_present(name, root, params_file)] if cfg is not None and getattr(cfg, "out_dir", None)}


def _load_if_present(section: str, root: Path, params_file: str) -> Any:
    from lab.config import load_section, read_params

    return load_section(section, root / params_file, check_paths=False) if section in read_params(root / params_file) \
        else None


def templated(path: str, out_dirs: dict[str, str]) -> str:
    """``path`` written through the ``out_dir`` of the stage whose output it is
    (``${retrieval_sweep.out_dir}/winner.json``), as that stage's ``outs`` are in ``dvc.yaml``: DVC
    resolves both from params.yaml, so moving an ``out_dir`` moves the edge without rewriting deps."""
    best = max((d for d in out_dirs.items() if path == d[1] or path.startswith(d[1] + "/")),
               key=lambda d: len(d[1]), default=None)
    return path if best is None else "${" + best[0] + ".out_dir}" + path[len(best[1]):]


def data_deps(section: str, root: Path, params_file: str = "params.yaml") -> list[str]:
    """Files and folders the section's config names, plus an experiment file's dataset paths; another
    stage's outputs through its ``out_dir`` (:func:`templated`)."""
    from lab.config import SECTIONS, load_section

    if section not in SECTIONS:
        return []
    cfg = load_section(section, root / params_file, check_paths=False)
    out_dirs = output_dirs(root, params_file)
    out: list[str] = []
    for value in cfg.paths().values():
        path = cfg.resolve(value, root)
        out.append(templated(_rel(path, root), out_dirs))
        if path.suffix in (".yaml", ".yml") and path.is_file():
            out.extend(_experiment_data(path, root))
    for other in getattr(cfg, "reads_sections", list)():
        out.extend(d for d in data_deps(other, root, params_file) if d not in out)
    return _with_reviews(out, root, out_dirs)


def _with_reviews(deps: list[str], root: Path, out_dirs: dict[str, str]) -> list[str]:
    """``deps`` with, after each test set CSV that has one, its review decisions file."""
    out: list[str] = []
    for dep in deps:
        out.append(dep)
        if dep.endswith(".csv"):
            path = root / _untemplated(dep, out_dirs)
            review = templated(_rel(review_path(path), root), out_dirs)
            if review_path(path).is_file() and review not in deps and review not in out:
                out.append(review)
    return out


def _untemplated(dep: str, out_dirs: dict[str, str]) -> str:
    """A dep written through ``${section.out_dir}`` back as the path it names."""
    m = re.match(r"^\$\{([A-Za-z0-9_-]+)\.out_dir\}(.*)$", dep)
    return dep if m is None else out_dirs[m.group(1)] + m.group(2)


def _experiment_data(path: Path, root: Path) -> list[str]:
    from lab.retrieval.sets import dataset_paths
    from lab.sweep import load_experiment

    exp = load_experiment(path)
    return [_rel(p, root) for p in dataset_paths(exp.dataset, root)] if exp.dataset else []


def stage_modules(stage: str) -> set[str]:
    """The module that registers ``stage``'s run function (:mod:`lab.stage`), or none for a stage
    that has no registered function."""
    from lab.stage import STAGES
    from lab.stages import load_all

    load_all()
    return {STAGES.get(stage).__module__} if stage in STAGES else set()


def stage_deps(stage: str, cmd: str, root: Path, params_file: str = "params.yaml",
               lab_dir: Path = LAB_DIR) -> list[str]:
    """The derived ``deps`` of a stage: notebook, ``lab`` sources of its import closure, data.

    Raises
    ------
    ConfigError
        The command runs no notebook through ``lab run``, or the notebook does not exist.
    """
    nb = stage_notebook(cmd)
    if nb is None:
        raise ConfigError(f"dvc.yaml: stage {stage!r}: cmd {cmd!r} is not `lab run NOTEBOOK`; "
                          "its deps cannot be derived")
    nb_path = root / nb
    if not nb_path.is_file():
        raise ConfigError(f"dvc.yaml: stage {stage!r}: notebook {nb} does not exist")
    code: list[Path] = []
    home = code_deps_root(root, lab_dir)
    if home is not None:
        code = [home / "lab" / p.relative_to(lab_dir) for p in closure(
            sorted(notebook_imports(nb_path, lab_dir) | set(RUNNER_MODULES) | stage_modules(stage)), lab_dir)]
    # code paths as the project names them (``lab/...`` at lab's own root, ``../../lab/...`` below it)
    deps = [nb, *(_rel(p, root) for p in code), *data_deps(stage, root, params_file)]
    return list(dict.fromkeys(deps))


def derived(root: Path, dvc_file: str = "dvc.yaml", params_file: str = "params.yaml") -> dict[str, list[str]]:
    """Stage name -> its derived deps, for every stage of ``dvc.yaml``."""
    path = root / dvc_file
    try:
        stages = (load_yaml(path.read_text(encoding="utf-8"), path) or {}).get("stages") or {}
    except (OSError, ConfigError) as exc:
        raise ConfigError(f"{path}: cannot read the pipeline ({exc})") from None
    return {name: stage_deps(name, st["cmd"], root, params_file) for name, st in stages.items()}


def drift(root: Path, dvc_file: str = "dvc.yaml", params_file: str = "params.yaml") -> dict[str, dict[str, list[str]]]:
    """Per stage whose ``deps`` differ from the derived ones: ``{"missing": [...], "extra": [...]}``."""
    stages = (read_yaml(root / dvc_file) or {}).get("stages") or {}
    out = {}
    for name, want in derived(root, dvc_file, params_file).items():
        have = [str(d) for d in stages[name].get("deps") or []]
        if have != want:
            out[name] = {"missing": [d for d in want if d not in have], "extra": [d for d in have if d not in want],
                         "order": [] if set(have) != set(want) else ["(same paths, different order)"]}
    return out


_STAGE = re.compile(r"^  (?P<name>[A-Za-z0-9_-]+):\s*$")


def rewrite(text: str, deps: dict[str, list[str]]) -> str:
    """``dvc.yaml`` text with each stage's ``deps:`` block replaced by ``deps[stage]``.

    Only the ``deps`` lists change; comments, order and every other key stay as written.
    A stage without a ``deps:`` key gets one right after its ``cmd:`` line.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage: str | None = None
    i = 0
    header = "# `deps` are derived (lab dvc-deps --write): the notebook, the lab modules it can run, its data.\n"
    done: set[str] = set()

    def block(name: str) -> list[str]:
        done.add(name)
        return ["    deps:\n", *(f"      - {d}\n" for d in deps[name])]

    while i < len(lines):
        line = lines[i]
        m = _STAGE.match(line)
        if m:
            stage = m.group("name")
        if stage in deps and line.startswith("    deps:"):
            out.extend(block(stage))
            i += 1
            while i < len(lines) and lines[i].startswith(("      - ", "        ")):  # the old list
                i += 1
            continue
        out.append(line)
        if stage in deps and stage not in done and line.startswith("    cmd:") and not _has_deps_below(lines, i + 1):
            out.extend(block(stage))
        i += 1
    result = "".join(out)
    if "# `deps` are derived" not in result:   # a file that says how its deps are made (a project's) keeps its line
        result = result.replace("stages:\n", header + "stages:\n", 1)
    return result


def _has_deps_below(lines: list[str], start: int) -> bool:
    for line in lines[start:]:
        if _STAGE.match(line):
            return False
        if line.startswith("    deps:"):
            return True
    return False


def write(root: Path, dvc_file: str = "dvc.yaml", params_file: str = "params.yaml") -> dict[str, Any]:
    """Rewrite ``dvc.yaml``'s deps from :func:`derived` (atomically); returns what changed."""
    from lab.io import write_text

    path = root / dvc_file
    changes = drift(root, dvc_file, params_file)
    if changes:
        write_text(path, rewrite(path.read_text(encoding="utf-8"), derived(root, dvc_file, params_file)))
    return changes
