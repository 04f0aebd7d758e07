"""Where the gateway stores user feedback: a JSON-lines file (appended with fsync) and one MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_line(path: Path, rec: dict[str, Any]) -> None:
    """Append one JSON line and fsync: feedback already acknowledged is never lost."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def log_feedback_mlflow(rec: dict[str, Any]) -> None:
    """Feedback lands in ONE ``gateway feedback`` run of the project's tracking store (tag
    ``lab.kind=feedback``), as rows of its ``feedback.json`` table (``log_table`` appends) and the
    running counts ``feedback_up`` / ``feedback_down``. Client API only: safe from worker threads."""
    import mlflow

    from lab import tracking

    tracking.setup()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("lab")
    found = client.search_runs([exp.experiment_id], filter_string="tags.`lab.kind` = 'feedback'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run_id = client.create_run(exp.experiment_id, run_name="gateway feedback",
                                   tags={"lab.kind": "feedback"}).info.run_id
    row = {k: [json.dumps(v) if isinstance(v, list) else v] for k, v in rec.items()}
    client.log_table(run_id, row, artifact_file="feedback.json")
    key = f"feedback_{rec['rating']}"
    n = len(client.get_metric_history(run_id, key))
    client.log_metric(run_id, key, n + 1, step=n + 1)
