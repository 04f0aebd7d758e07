"""lab.viz: labels that stay readable where points sit close, facets instead of tuple labels."""

from __future__ import annotations

import itertools

import pandas as pd

from lab import viz


def test_labels_of_close_points_overlap_neither_each_other_nor_a_point() -> None:
    # zero_shot, few_shot and lora of the fine-tune comparison sit this close on a log axis
    df = pd.DataFrame({"cost": [1.0, 1.03, 0.97, 0.95, 3.0], "f1": [2.8, 2.6, 2.7, 2.4, 4.2],
                       "arm": ["zero_shot", "few_shot", "lora", "full", "rag"]})
    fig = viz.scatter_labeled(df, "cost", "f1", "arm", title="t", xlabel="x", ylabel="y", log_x=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and sorted(t.get_text() for t in ax.texts) == sorted(df["arm"])
    boxes = [t.get_window_extent() for t in ax.texts]
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    points = ax.transData.transform(df[["cost", "f1"]].to_numpy())
    assert not any(b.contains(px, py) for b in boxes for px, py in points)


def test_bars_by_facet_one_panel_per_facet_with_plain_category_labels() -> None:
    df = pd.DataFrame({"set": ["a"] * 4 + ["b"] * 2, "entity": ["PERSON", "PERSON", "EMAIL", "EMAIL", "IP", "IP"],
                       "model": ["m1", "m2"] * 3, "f2": [0.5, 0.7, 1.0, 0.9, 0.2, 0.4]})
    fig = viz.barh_by_facet(df, "entity", "model", "f2", facet="set", title="t", xlabel="F2", xlim=(0, 1))
    fig.canvas.draw()
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a", "b"]
    assert [sorted(t.get_text() for t in ax.get_yticklabels()) for ax in fig.axes] == [["EMAIL", "PERSON"], ["IP"]]
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    legend = fig.legends[0].get_window_extent()
    assert not any(legend.overlaps(ax.get_window_extent()) for ax in fig.axes)
