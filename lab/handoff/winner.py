"""``winner.json``: the retrieval sweep's winning configuration, read by the fine-tune comparison
(its RAG arms) and by export (the served retriever)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.versioned import read_versioned, write_versioned

FORMAT = "lab.retrieval_sweep.winner"
VERSION = 1
REGENERATE = "dvc repro retrieval_sweep"


def write_winner(path: str | Path, winner: dict[str, Any]) -> Path:
    """Write the sweep's ``winner`` (metric, mode, value, ci95, label, config, metrics, experiment,
    comparison) to ``path``."""
    return write_versioned(path, FORMAT, VERSION, winner)


def read_winner(path: str | Path) -> dict[str, Any]:
    """The whole winner file, its ``config`` checked (:func:`lab.retrieval.configured.check_config`).

    Raises
    ------
    DataError
        Missing, foreign or old file, or a config no retriever can be built from; names the file.
    """
    from lab.retrieval.configured import check_config

    data = read_versioned(path, FORMAT, VERSION, REGENERATE)
    check_config(data.get("config"), str(path))
    return data


def read_winner_config(path: str | Path) -> dict[str, Any]:
    """The winning retrieval configuration (``config`` of :func:`read_winner`)."""
    return read_winner(path)["config"]
