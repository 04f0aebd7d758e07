"""What a stage's report shows above its tables: the finding first, then the configuration compactly.

An executed notebook (and its HTML, which hides code) is the study's report: a person reads it top
down, so a stage notebook shows :func:`show_finding` right after loading its results and
:func:`config_table` after that, instead of a JSON dump of the config before any result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def config_rows(config: Any) -> list[tuple[str, str]]:
    """``(dotted key, value)`` rows of a config (a pydantic model or a mapping); lists of scalars
    stay on one row, lists of mappings get one row per item."""
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else dict(config)
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, v in enumerate(value):
                rows.append((f"{prefix}[{i}]", ", ".join(f"{k}={_short(x)}" for k, x in v.items() if x not in (None, {}, []))))
        else:
            rows.append((prefix, _short(value)))

    walk("", data)
    return rows


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def config_table(config: Any) -> Any:
    """The config as a two-column table (``key``, ``value``) for the report, values left-aligned and
    never cut (a pandas Styler: the HTML shows each value whole)."""
    import pandas as pd

    frame = pd.DataFrame(config_rows(config), columns=["key", "value"]).set_index("key")
    return frame.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap"})


def show_finding(markdown: str, title: str = "Finding") -> None:
    """Display the study's finding (a few sentences with its numbers) as the report's first section."""
    from IPython.display import Markdown, display

    display(Markdown(f"## {title}\n\n{markdown}"))


def show_sections(sections: list[tuple[str, Any]]) -> None:
    """Display a stage's report sections in order: ``(title, content)`` where content is a table
    (DataFrame or Styler), a PNG path, Markdown text, or anything IPython can display."""
    from pathlib import Path

    from IPython.display import Image, Markdown, display

    for title, content in sections:
        display(Markdown(f"### {title}"))
        if isinstance(content, Path):
            display(Image(filename=str(content)))
        elif isinstance(content, str):
            display(Markdown(content))
        else:
            display(content)


def show_stage(run: Any) -> None:
    """The report of a stage run (:class:`lab.stages.StageRun`): the finding first, the configuration,
    then the result's sections (``report_sections(out_dir)``, when it has them)."""
    from IPython.display import Markdown, display

    show_finding(run.result.finding())
    display(Markdown("## Configuration"))
    display(config_table(run.cfg))
    sections = getattr(run.result, "report_sections", None)
    if sections is not None:
        show_sections(sections(run.paths.out_dir))
