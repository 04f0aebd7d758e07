"""The static import closure of ``lab`` modules: which source files a piece of code can run.

One function, :func:`closure`, serves two purposes that must never be listed by hand:

- the ``deps`` of every DVC stage (``lab dvc-deps``): the closure of the stage notebook's imports
  plus the runner, so a change to any module a stage can execute makes ``dvc status`` report it;
- a sweep trial's code identity (:func:`code_id`): trials computed by other code are never reused.

Imports are read from the source with :mod:`ast`, everywhere in a module (top level, inside
functions, under ``TYPE_CHECKING``): ``lab`` imports heavy or optional modules inside the functions
that use them, and those run too. Importing ``lab.a.b`` also runs ``lab/__init__.py`` and
``lab/a/__init__.py``, so package ``__init__`` files are part of the closure. Only modules inside
the ``lab`` package are followed; third-party code is pinned by ``requirements.lock``.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

PACKAGE = "lab"
#: The folder holding the ``lab`` package.
LAB_DIR = Path(__file__).resolve().parent


def module_file(name: str, lab_dir: Path = LAB_DIR) -> Path | None:
    """The source file of module ``name`` (``lab.x.y``): ``lab/x/y.py`` or ``lab/x/y/__init__.py``;
    None when it is not a module of the package."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = lab_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file() and (len(parts) > 1 or candidate.name == "__init__.py"):
            return candidate
    return None


def module_name(path: Path, lab_dir: Path = LAB_DIR) -> str:
    """``lab/x/y.py`` -> ``lab.x.y``; ``lab/x/__init__.py`` -> ``lab.x``."""
    rel = Path(path).resolve().relative_to(lab_dir.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_in_source(source: str, importer: str = "", *, is_package: bool = False,
                      lab_dir: Path = LAB_DIR, where: str = "<source>") -> set[str]:
    """Names of the ``lab`` modules a piece of source imports, anywhere in it.

    ``from lab.x import y`` counts ``lab.x`` and, when ``y`` is itself a module, ``lab.x.y``.

    Raises
    ------
    SyntaxError
        The source does not parse (the message names ``where``).
    """
    tree = ast.parse(source, filename=where)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(node, importer, is_package)
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names
                         if module_file(f"{mod}.{a.name}", lab_dir) is not None)
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m, lab_dir) is not None}


@lru_cache(maxsize=None)
def _direct(path: Path, mtime_ns: int, lab_dir: Path) -> frozenset[str]:
    name = module_name(path, lab_dir)
    return frozenset(imports_in_source(path.read_text(encoding="utf-8"), name,
                                       is_package=path.name == "__init__.py", lab_dir=lab_dir, where=str(path)))


def direct_imports(path: Path, lab_dir: Path = LAB_DIR) -> frozenset[str]:
    """The ``lab`` modules the file ``path`` imports (cached per modification time)."""
    path = Path(path).resolve()
    return _direct(path, path.stat().st_mtime_ns, lab_dir)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(modules: Iterable[str], lab_dir: Path = LAB_DIR) -> list[Path]:
    """Every source file that importing ``modules`` (and what they import, transitively) can run,
    package ``__init__`` files included; sorted.

    Raises
    ------
    ValueError
        A name that is not a module of the package.
    """
    todo: list[str] = []
    for m in modules:
        if module_file(m, lab_dir) is None:
            raise ValueError(f"{m!r} is not a module of the {PACKAGE} package (looked in {lab_dir})")
        todo.append(m)
    seen: set[str] = set()
    while todo:
        for name in _with_parents(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            path = module_file(name, lab_dir)
            if path is not None:
                todo.extend(direct_imports(path, lab_dir))
    return sorted(p for p in (module_file(m, lab_dir) for m in seen) if p is not None)


def notebook_imports(notebook: str | Path, lab_dir: Path = LAB_DIR) -> set[str]:
    """The ``lab`` modules the code cells of a notebook import (IPython magics and shell lines skipped).

    Raises
    ------
    ValueError
        The notebook is not JSON or a cell does not parse (the message names the notebook and cell).
    """
    path = Path(notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a notebook (invalid JSON: {exc.msg})") from None
    found: set[str] = set()
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        src = "".join(cell.get("source", []))
        src = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        try:
            found |= imports_in_source(src, lab_dir=lab_dir, where=f"{path} cell {i}")
        except SyntaxError as exc:
            raise ValueError(f"{path}: code cell {i} does not parse ({exc.msg}, line {exc.lineno})") from None
    return found


def code_id(modules: Iterable[str], lab_dir: Path = LAB_DIR) -> str:
    """12 hex digits over the path and bytes of every file in the closure of ``modules``."""
    h = hashlib.sha256()
    for f in closure(modules, lab_dir):
        h.update(f.relative_to(lab_dir).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]
