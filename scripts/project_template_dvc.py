"""Write lab/templates/project/dvc.yaml: lab's own dvc.yaml stages of a `lab init` project, without
their deps (`lab init` derives those for the new project). tests/test_scaffold.py checks the file
equals what this script writes, so the template cannot drift from lab's pipeline.

    python scripts/project_template_dvc.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.scaffold import STAGES, TEMPLATE  # noqa: E402

HEADER = ("# The stages of a lab project (written by `lab init`): each runs one notebook with `lab run`;\n"
          "# `deps` are derived (lab dvc-deps --write): the notebook and the data its section names.\n")


def render() -> str:
    """The template's text from lab's own dvc.yaml."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    missing = [s for s in STAGES if s not in stages]
    if missing:
        raise SystemExit(f"dvc.yaml has no stage {missing}: the project template needs them")
    body = {"stages": {s: {k: v for k, v in stages[s].items() if k != "deps"} for s in STAGES}}
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    (TEMPLATE / "dvc.yaml").write_text(render(), encoding="utf-8")
    print(f"wrote {TEMPLATE / 'dvc.yaml'}")
