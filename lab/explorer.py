"""What the marimo explorer (``notebooks/explorer.py``) shows: the MLflow runs of every study as tables.

Kept here, not in the app, so that the app stays a thin layer of widgets and the logic is tested:
:func:`runs_frame` reads every run of the project's store (or ``MLFLOW_TRACKING_URI``) into one
frame with readable columns (``stage``, ``run``, ``status``, ``started``, ``commit``, ``parent``,
``param:<key>``, ``metric:<key>``); :func:`filter_runs` narrows it by stage, top-level runs and
parameter values; :func:`compare` lays runs side by side, keeping only the params and metrics on
which they differ (or all of them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

BASE = ("run", "stage", "name", "status", "started", "commit", "dirty", "parent")


def runs_frame(root: Path | None = None, *, max_results: int = 5000) -> pd.DataFrame:
    """Every run as a row, newest first (an empty frame with the base columns when there are none)."""
    import mlflow

    from lab.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(root))
    raw = mlflow.search_runs(search_all_experiments=True, max_results=max_results)
    if raw.empty:
        return pd.DataFrame(columns=list(BASE))

    def col(name: str) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series([None] * len(raw), index=raw.index)

    out = pd.DataFrame({"run": raw["run_id"], "stage": col("tags.lab.stage"), "name": col("tags.mlflow.runName"),
                        "status": raw["status"], "started": raw["start_time"], "commit": col("tags.git.commit").str[:10],
                        "dirty": col("tags.git.dirty"), "parent": col("tags.mlflow.parentRunId")})
    params = raw[[c for c in raw.columns if c.startswith("params.")]].rename(columns=lambda c: "param:" + c[7:])
    metrics = raw[[c for c in raw.columns if c.startswith("metrics.")]].rename(columns=lambda c: "metric:" + c[8:])
    return pd.concat([out, params, metrics], axis=1).sort_values("started", ascending=False).reset_index(drop=True)


def overview(df: pd.DataFrame, *, max_params: int = 8, max_metrics: int = 16) -> pd.DataFrame:
    """The base columns and the first params and metrics that vary (a table a person can read;
    :func:`compare` shows everything of the runs picked)."""
    def varying(prefix: str) -> list[str]:
        cols = [c for c in df.columns if c.startswith(prefix) and df[c].notna().any()]
        moving = [c for c in cols if df[c].astype(str).nunique() > 1]
        return (moving or cols)

    keep = [c for c in BASE if c in df] + varying("param:")[:max_params] + varying("metric:")[:max_metrics]
    return df[keep]


def stages(df: pd.DataFrame) -> list[str]:
    return sorted(s for s in df["stage"].dropna().unique()) if "stage" in df else []


def filter_runs(df: pd.DataFrame, *, stage: str | None = None, top_level: bool = False,
                params: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Runs of ``stage`` (all when None), only parent runs when ``top_level``, and whose params equal
    ``params`` (keys without the ``param:`` prefix; values compared as MLflow stores them, strings);
    columns that are empty for every remaining run are dropped."""
    out = df
    if stage:
        out = out[out["stage"] == stage]
    if top_level:
        out = out[out["parent"].isna()]
    for key, value in (params or {}).items():
        c = f"param:{key}"
        if c not in out:
            return out.iloc[0:0]
        out = out[out[c].astype(str) == str(value)]
    return out.dropna(axis=1, how="all")


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c[7:] for c in df.columns if c.startswith("metric:") and df[c].notna().any()]


def param_columns(df: pd.DataFrame) -> list[str]:
    return [c[6:] for c in df.columns if c.startswith("param:") and df[c].notna().any()]


def compare(df: pd.DataFrame, runs: Sequence[str], *, only_differences: bool = True) -> pd.DataFrame:
    """The chosen runs as columns (by run id prefix), params and metrics as rows."""
    sel = df[df["run"].isin(runs)].set_index("run")
    keep = [c for c in sel.columns if c.startswith(("param:", "metric:")) and sel[c].notna().any()]
    table = sel[["stage", "name", "started", "commit", *keep]].T
    table.columns = [r[:8] for r in table.columns]
    if only_differences and len(runs) > 1:
        body = table.loc[keep]
        varies = body.astype(str).nunique(axis=1) > 1
        table = pd.concat([table.loc[["stage", "name", "started", "commit"]], body[varies]])
    return table


def metric_history(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``started``, ``run``, ``name`` and the metric for the runs that have it, oldest first (to plot)."""
    c = f"metric:{metric}"
    if c not in df:
        return pd.DataFrame(columns=["started", "run", "name", metric])
    got = df[df[c].notna()][["started", "run", "name", c]].rename(columns={c: metric})
    return got.sort_values("started").reset_index(drop=True)


def describe(df: pd.DataFrame) -> dict[str, Any]:
    """Counts for the app's header."""
    return {"runs": len(df), "stages": {s: int((df["stage"] == s).sum()) for s in stages(df)}}
