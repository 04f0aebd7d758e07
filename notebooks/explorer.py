"""The run explorer: browse the MLflow runs of every lab study, filter, compare, plot.

    marimo run notebooks/explorer.py            # serves on 127.0.0.1 (marimo's default)
    marimo export html notebooks/explorer.py -o explorer.html

The logic is in :mod:`lab.explorer`; this app only lays out widgets and tables.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="lab run explorer")


@app.cell
def _():
    import marimo as mo

    from lab import explorer

    runs = explorer.runs_frame()
    summary = explorer.describe(runs)
    mo.md(f"# lab run explorer\n\n{summary['runs']} MLflow runs: "
          + ", ".join(f"**{s}** {n}" for s, n in summary["stages"].items()))
    return explorer, mo, runs


@app.cell
def _(explorer, mo, runs):
    stage = mo.ui.dropdown(options=explorer.stages(runs), value=(explorer.stages(runs) or [None])[0],
                           label="stage")
    top_level = mo.ui.checkbox(value=True, label="top-level runs only")
    mo.hstack([stage, top_level], justify="start")
    return stage, top_level


@app.cell
def _(explorer, mo, runs, stage, top_level):
    staged = explorer.filter_runs(runs, stage=stage.value, top_level=top_level.value)
    param_filters = mo.ui.dictionary({p: mo.ui.dropdown(options=sorted(staged[f"param:{p}"].dropna().astype(str).unique()),
                                                        label=p)
                                      for p in explorer.param_columns(staged)[:12]})
    mo.accordion({"filter by parameters": param_filters})
    return param_filters, staged


@app.cell
def _(explorer, mo, param_filters, staged):
    chosen = {k: v for k, v in param_filters.value.items() if v}
    shown = explorer.filter_runs(staged, params=chosen)
    table = mo.ui.table(explorer.overview(shown), selection="multi", page_size=15,
                        label=f"{len(shown)} runs (select to compare; the columns whose values vary first)")
    table
    return shown, table


@app.cell
def _(explorer, mo, shown, table):
    picked = list(table.value["run"]) if len(table.value) else list(shown["run"][:2])
    comparison = explorer.compare(shown, picked) if picked else None
    mo.vstack([mo.md(f"## Compare {len(picked)} run(s) (params and metrics that differ)"),
               comparison if comparison is not None else mo.md("no runs")])
    return


@app.cell
def _(explorer, mo, shown):
    metric = mo.ui.dropdown(options=explorer.metric_columns(shown), value=(explorer.metric_columns(shown) or [None])[0],
                            label="metric")
    metric
    return (metric,)


@app.cell
def _(explorer, metric, mo, shown):
    import matplotlib.pyplot as plt

    history = explorer.metric_history(shown, metric.value) if metric.value else None
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if history is not None and len(history):
        ax.plot(history["started"], history[metric.value], marker="o")
        ax.set(xlabel="run started", ylabel=metric.value, title=f"{metric.value} across runs")
        fig.autofmt_xdate()
    mo.vstack([mo.md("## A metric across runs"), fig])
    return


if __name__ == "__main__":
    app.run()
