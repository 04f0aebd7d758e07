"""The floors of lab/ (lab.layout): no module imports a floor above its own, no study another study."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.imports import LAB_DIR, closure, imports_in_source, module_name
from lab.layout import FLOORS, floor_of, floors_table, violations

REPO = Path(__file__).resolve().parents[1]


def test_no_import_goes_up_a_floor():
    assert violations() == []


def test_every_module_is_on_a_floor():
    for path in LAB_DIR.rglob("*.py"):
        floor_of(module_name(path))  # raises KeyError naming the module when it is on none


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    lab_dir = tmp_path / "lab"
    for rel, text in files.items():
        f = lab_dir / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return lab_dir


def test_violations_catch_an_upward_import_even_inside_a_function(tmp_path):
    lab_dir = _fake_package(tmp_path, {
        "__init__.py": "", "metrics/__init__.py": "", "studies/__init__.py": "",
        "metrics/ir.py": "def f():\n    from lab.studies.chunking import x\n",
        "studies/chunking.py": "x = 1\n", "studies/retrieval.py": "from lab.studies import chunking\n",
    })
    found = violations(lab_dir)
    assert any("lab.metrics.ir (floor metrics) imports lab.studies.chunking" in v for v in found), found
    assert any("lab.studies.retrieval imports another study, lab.studies.chunking" in v for v in found), found


def test_an_unknown_module_must_be_placed(tmp_path):
    lab_dir = _fake_package(tmp_path, {"__init__.py": "", "newthing.py": ""})
    assert any("'lab.newthing' is on no floor" in v for v in violations(lab_dir))


def test_closure_follows_lazy_and_relative_imports_and_packages(tmp_path):
    lab_dir = _fake_package(tmp_path, {
        "__init__.py": "", "a/__init__.py": "from . import b\n", "a/b.py": "import json\n",
        "c.py": "def f():\n    from lab.a import b\n", "d.py": "x = 1\n",
    })
    files = {p.relative_to(lab_dir).as_posix() for p in closure(["lab.c"], lab_dir)}
    assert files == {"__init__.py", "c.py", "a/__init__.py", "a/b.py"}
    assert imports_in_source("from lab.a import b", lab_dir=lab_dir) == {"lab.a", "lab.a.b"}
    with pytest.raises(ValueError, match="not a module"):
        closure(["lab.nope"], lab_dir)


def test_readme_layout_shows_the_floors_as_they_are():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert floors_table() in readme, "README's Layout table is stale: paste lab.layout.floors_table()"
    assert len(FLOORS) == floors_table().count("\n") - 1
