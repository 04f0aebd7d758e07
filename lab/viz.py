"""Plots the notebooks show and save: matplotlib, headless, one function per picture."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd


def _pyplot() -> Any:
    import matplotlib

    if "MPLBACKEND" not in os.environ and not os.environ.get("JPY_PARENT_PID"):
        matplotlib.use("Agg")  # headless unless a kernel already chose an inline backend
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float = 8.0, height: float = 4.5) -> tuple[Any, Any]:
    return _pyplot().subplots(figsize=(width, height))


def save(fig: Any, path: str | Path) -> Path:
    """Save ``fig`` as PNG atomically and close it (notebooks display what they save)."""
    from lab.io import write_figure

    import matplotlib.pyplot as plt

    out = write_figure(path, fig)
    plt.close(fig)   # a report shows the saved PNG (lab.report.show_sections), not the open figure too
    return out


def hist_by_group(df: pd.DataFrame, value: str, group: str, *, title: str, xlabel: str,
                  log_x: bool = True, bins: int = 40) -> Any:
    """One step histogram of ``value`` per ``group`` on shared (log-spaced) bins; returns the figure."""
    import numpy as np

    fig, ax = _figure()
    data = df[df[value] > 0] if log_x else df
    if data.empty:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return fig
    lo, hi = float(data[value].min()), float(data[value].max())
    edges = (np.geomspace(max(lo, 1.0), max(hi, lo + 1.0), bins) if log_x
             else np.linspace(lo, max(hi, lo + 1.0), bins))
    for name, part in data.groupby(group):
        ax.hist(part[value], bins=edges, histtype="step", linewidth=1.6, label=f"{name} (n={len(part)})")
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count (log)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def bar_counts(df: pd.DataFrame, category: str, stack: str, count: str, *, title: str) -> Any:
    """Horizontal stacked bars: ``count`` per ``category``, stacked by ``stack``; returns the figure."""
    fig, ax = _figure()
    if df.empty:
        ax.text(0.5, 0.5, "no problems found", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return fig
    table = df.pivot_table(index=category, columns=stack, values=count, aggfunc="sum", fill_value=0)
    table.plot.barh(stacked=True, ax=ax)
    ax.set_xlabel(count)
    ax.set_title(title)
    ax.legend(fontsize=8, title=stack)
    return fig


def scatter_labeled(df: pd.DataFrame, x: str, y: str, label: str, *, title: str, xlabel: str,
                    ylabel: str, log_x: bool = False) -> Any:
    """One labelled point per row (e.g. recall vs precision per chunker); returns the figure.

    Labels are placed by :func:`_place_labels` after the scale is set (``log_x`` here, not on the
    returned figure: a scale changed afterwards moves the points from under their labels), because
    arms of similar cost and quality (zero_shot, few_shot, full, lora) sit close enough for fixed
    offsets to overlap.
    """
    fig, ax = _figure(7.0, 5.0)
    for _, row in df.iterrows():
        ax.scatter(row[x], row[y], s=40)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    texts = [ax.text(row[x], row[y], str(row[label]), fontsize=8, ha="center", va="center")
             for _, row in df.iterrows()]
    _place_labels(ax, texts, points=(df[x].tolist(), df[y].tolist()))
    return fig


def bar_grouped(df: pd.DataFrame, category: str, group: str, value: str, *, title: str, ylabel: str,
                err: str | None = None) -> Any:
    """Vertical bars of ``value`` per ``category``, one bar per ``group`` side by side."""
    fig, ax = _figure(9.0, 4.5)
    table = df.pivot_table(index=category, columns=group, values=value, aggfunc="mean", sort=False)
    yerr = df.pivot_table(index=category, columns=group, values=err, aggfunc="mean", sort=False) if err else None
    table.plot.bar(ax=ax, yerr=yerr, capsize=2, rot=30)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8, title=group)
    return fig


def barh_by_facet(df: pd.DataFrame, category: str, group: str, value: str, *, facet: str, title: str,
                  xlabel: str, xlim: tuple[float, float] | None = None) -> Any:
    """Horizontal bars of ``value`` per ``category`` (one bar per ``group``), one panel per ``facet``.

    Each panel is titled by its facet value and its rows carry the category alone, and the legend
    sits outside the panels: one axis labelled ``(facet, category)`` with the legend inside drew
    long labels and put the legend over the longest bars (the guardrails' per-entity plot).
    """
    facets = list(dict.fromkeys(df[facet]))
    tables = [df[df[facet] == f].pivot_table(index=category, columns=group, values=value, aggfunc="mean")
              for f in facets]
    if not tables:
        fig, ax = _figure(8.0, 3.0)
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
        return fig
    rows = [max(len(t), 1) for t in tables]
    fig, axes = _pyplot().subplots(len(tables), 1, figsize=(8.0, 1.2 + 0.32 * sum(rows) + 0.5 * len(tables)),
                             gridspec_kw={"height_ratios": rows}, squeeze=False, sharex=True)
    for ax, name, table in zip(axes[:, 0], facets, tables, strict=True):
        table.plot.barh(ax=ax, legend=False)
        ax.set_title(str(name), fontsize=9, loc="left")
        ax.set_ylabel("")
        ax.grid(axis="x", alpha=0.3)
        if xlim is not None:
            ax.set_xlim(*xlim)
    axes[-1, 0].set_xlabel(xlabel)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title=group, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def lines_by_group(df: pd.DataFrame, x: str, y: str, group: str, *, title: str, xlabel: str, ylabel: str,
                   highlight: str | None = None) -> Any:
    """One line per ``group`` (e.g. hit rate against k per configuration); ``highlight`` drawn bold."""
    fig, ax = _figure(8.0, 5.0)
    for name, part in df.groupby(group, sort=False):
        part = part.sort_values(x)
        bold = highlight is not None and name == highlight
        ax.plot(part[x], part[y], marker="o", linewidth=2.8 if bold else 1.0, alpha=1.0 if bold else 0.55,
                label=f"{name} (winner)" if bold else name, zorder=3 if bold else 2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return fig


def _place_labels(ax: Any, texts: list[Any], points: tuple[Sequence[float], Sequence[float]] | None = None) -> None:
    """Move point labels apart so none overlaps another or, given ``points`` (x, y), a point
    (adjustText: a kept library for exactly this, rather than hand-tuned offsets)."""
    if len(texts) < 2:
        return
    from adjustText import adjust_text

    # points count as zero-size obstacles: a wider box around each label and a stronger push from
    # the points keep a label off its own marker, not only off the other labels
    where = ({"x": list(points[0]), "y": list(points[1]), "expand": (1.3, 1.8), "force_static": (0.4, 0.8)}
             if points is not None else {})
    adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5}, **where)


def pareto_scatter(df: pd.DataFrame, x: str, y: str, front: str, label: str, *, title: str, xlabel: str,
                   ylabel: str, log_x: bool = False, also: str | None = None, also_label: str = "") -> Any:
    """Quality (``y``, higher is better) against one cost (``x``, lower is better).

    ``front`` names a boolean column: the Pareto front over exactly these two axes (no other row
    has at least this quality at no more cost), marked, labelled and joined by a step line. ``also``
    may name a second boolean column (e.g. the front over several costs at once), drawn as rings and
    labelled ``also_label`` in the legend, so a point on a front of other costs is never shown as
    one of this plot's.
    """
    fig, ax = _figure(7.5, 5.0)
    rest, best = df[~df[front]], df[df[front]].sort_values(x)
    ax.scatter(rest[x], rest[y], s=25, alpha=0.5, label="dominated on these axes")
    ax.scatter(best[x], best[y], s=70, marker="*", color="crimson", label="Pareto front (these axes)", zorder=3)
    ax.step(best[x], best[y].cummax(), where="post", color="crimson", alpha=0.5)
    if also is not None:
        ring = df[df[also]]
        ax.scatter(ring[x], ring[y], s=140, facecolors="none", edgecolors="0.35", linewidths=1.0,
                   label=also_label or also, zorder=2)
    texts = [ax.text(row[x], row[y], str(row[label]), fontsize=7) for _, row in best.iterrows()]
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _place_labels(ax, texts)
    return fig
