"""The floors of lab/ (lab.layout): no module imports a floor above its own, no study another study,
no import circle, and no floor below the studies names a stage's output path."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.imports import LAB_DIR, closure, imports_in_source, module_name
from lab.layout import (
    FLOORS,
    PATH_LITERAL_EXEMPT,
    floor_of,
    floors_table,
    import_circles,
    literals_naming_outputs,
    output_path_literals,
    violations,
)

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


def test_no_import_circle():
    assert import_circles() == []


def test_import_circles_are_found_round_a_loop_but_not_in_the_package_relation(tmp_path):
    lab_dir = _fake_package(tmp_path, {
        "__init__.py": "", "judge/__init__.py": "from . import a\nfrom lab.judge.c import x\n",
        "judge/a.py": "from lab.judge import c\n",            # a module importing its own package: no circle
        "judge/b.py": "def f():\n    from lab.judge import c\n",   # b -> c -> d -> b, lazily: a circle
        "judge/c.py": "import lab.judge.d\nx = 1\n", "judge/d.py": "from lab.judge.b import f\n",
        "metrics.py": "import lab.config\n", "config.py": "from lab import metrics\n",
    })
    assert import_circles(lab_dir) == [["lab.config", "lab.metrics"], ["lab.judge.b", "lab.judge.c", "lab.judge.d"]]


def test_no_floor_below_the_studies_names_a_stage_output_path():
    assert output_path_literals() == []
    assert set(PATH_LITERAL_EXEMPT) <= {m for m in map(module_name, LAB_DIR.rglob("*.py"))}


def test_output_path_literals_are_caught_in_code_but_not_in_prose(tmp_path):
    src = '''"""Module docstring naming results/judge_eval/models is prose."""
from pathlib import Path
# a comment naming results/x is prose too
A = Path("results/guardrails_eval/models")
def f(root, name):
    """Docstring: results/export/registry.json."""
    b = root / "results" / "serve"
    c = Path("results", name)
    d = f"{root}/results/{name}"
    e = {"results": 1, "n_results": "results"}   # a key or word, not a path
    return "see the results/ folder", b, c, d, e
'''
    found = literals_naming_outputs(src)
    assert [line for line, _ in found] == [4, 7, 8, 9, 11], found
    lab_dir = _fake_package(tmp_path, {
        "__init__.py": "", "config/__init__.py": "", "config/sections.py": "OUT = 'results/x'\n",
        "guardrails/__init__.py": "",
        "guardrails/check.py": "MODEL = 'results/guardrails_eval/models/injection'\n",
        "studies/__init__.py": "", "studies/judge.py": "OUT = 'results/judge_eval'\n",
        "cli.py": "FEEDBACK = 'results/serve/feedback.jsonl'\n",
    })
    found = output_path_literals(lab_dir)
    assert len(found) == 1 and found[0].startswith("lab/guardrails/check.py:1: 'results/guardrails_eval"), found
    assert "floor guardrails" in found[0] and "take the path as an argument" in found[0]


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


def test_a_module_over_500_lines_says_why_at_its_top():
    import ast

    long = []
    for path in sorted(LAB_DIR.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Over 500 lines" not in doc:
                long.append(f"{path.relative_to(LAB_DIR.parent)} ({text.count(chr(10))} lines)")
    assert not long, f"split these modules or say why at their top ('Over 500 lines on purpose: ...'): {long}"
