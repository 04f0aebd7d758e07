"""The stage graph of ``dvc.yaml``, derived (never drawn by hand): a stage reads another's output when
one of its ``deps`` is that output or lies inside it.

    python scripts/stage_graph.py            # the Mermaid diagram the README shows

``tests/test_docs.py`` checks that the README holds exactly this output, and the docs site renders
the same edges as a table at build time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

DVC_YAML = Path(__file__).resolve().parents[1] / "dvc.yaml"


def _paths(entries: list[Any] | None) -> list[str]:
    """Paths of a ``deps``/``outs`` list, whose entries are a path or ``{path: options}``."""
    out = []
    for e in entries or []:
        out.extend(e if isinstance(e, dict) else [e])
    return [str(p).rstrip("/") for p in out]


def stages(dvc_yaml: Path = DVC_YAML) -> dict[str, dict[str, Any]]:
    """The stages of ``dvc_yaml`` in file order."""
    return yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]


def edges(dvc_yaml: Path = DVC_YAML) -> dict[tuple[str, str], list[str]]:
    """(producer, consumer) -> the file names the consumer reads from the producer's outputs."""
    st = stages(dvc_yaml)
    outs = {name: _paths(s.get("outs")) for name, s in st.items()}
    found: dict[tuple[str, str], list[str]] = {}
    for consumer, s in st.items():
        for dep in _paths(s.get("deps")):
            for producer, paths in outs.items():
                if producer != consumer and any(dep == o or dep.startswith(o + "/") for o in paths):
                    name = Path(dep).name
                    files = found.setdefault((producer, consumer), [])
                    if name not in files:
                        files.append(name)
    return found


def mermaid(dvc_yaml: Path = DVC_YAML) -> str:
    """A Mermaid flowchart: one node per stage, one arrow per (producer, consumer) with the files."""
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"  {name}" for name in stages(dvc_yaml)]
    for (a, b), files in edges(dvc_yaml).items():
        label = ", ".join(files)
        lines.append(f'  {a} -- "{label}" --> {b}')
    lines.append("```")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(mermaid(Path(sys.argv[1]) if len(sys.argv) > 1 else DVC_YAML))
