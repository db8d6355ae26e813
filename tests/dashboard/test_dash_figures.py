"""The plotly figures: labels that fit (radar), a labelled per-class grid instead of 80 bars."""

import numpy as np

from xai_core.dashboard import assessment as A
from xai_core.dashboard.figures import class_heatmap_figure, radar_figure, wrap_label


def test_long_metric_names_wrap_on_the_radar():
    assert wrap_label("Relevance Rank Accuracy") == "Relevance<br>Rank<br>Accuracy"
    assert wrap_label("IoSR") == "IoSR" and wrap_label("Deletion AUC") == "Deletion AUC"
    import pandas as pd

    long = pd.DataFrame({"explainer": ["a"] * 3, "metric": ["x", "y", "z"], "mean": [0.1, 0.5, 0.9]})
    fig = radar_figure(long, ["x", "y", "z"], {"x": "Relevance Mass Accuracy"})
    assert fig.data[0].theta[0] == "Relevance<br>Mass<br>Accuracy"


def test_class_grid_labels_every_cell(synth_tables):
    pc = A.class_bars_frame(A.per_class(synth_tables), explainer="a")
    fig = class_heatmap_figure(pc, "metric", {"cat": 3, "dog": 3, "bird": 2}, {"m1": "Metric one"})
    h = fig.data[0]
    assert list(h.y) == ["cat (n=3)", "dog (n=3)", "bird (n=2)"] and list(h.x)[0] == "Metric one"
    z = np.asarray(h.z, dtype=float)
    assert z.shape == (3, 3) and z[0, 0] == pc.set_index(["class", "metric"]).loc[("cat", "m1"), "mean"]
    # every cell says its value; a class without a result says "—"
    assert h.text[0][0] == f"{z[0, 0]:.2f}" and all(t == "—" for row, zr in zip(h.text, z) for t, v in zip(row, zr)
                                                     if not np.isfinite(v))


def test_radar_legend_is_opaque_and_ticks_sit_between_axes():
    """Issue 18: pale legend colours (trace opacity 0.6), tick labels on the first axis where
    every polygon has a vertex, the bottom axis label cut off."""
    import pandas as pd

    metrics = ["m1", "m2", "m3", "m4"]
    long = pd.DataFrame({"explainer": [e for e in "ab" for _ in metrics], "metric": metrics * 2,
                         "mean": [0.2, 0.4, 0.6, 0.8, 0.9, 0.1, 0.5, 0.3]})
    fig = radar_figure(long, metrics, {"m3": "Relevance Mass Accuracy"})
    for tr in fig.data:
        assert tr.opacity in (None, 1) and tr.line.color.startswith("rgb(")       # opaque line and legend
        assert tr.fillcolor.startswith("rgba(") and float(tr.fillcolor.rsplit(",", 1)[1].rstrip(")")) < 0.5
    ax = fig.layout.polar.radialaxis
    assert ax.angle % 90 != 0 and ax.angle == 90 - 180 / len(metrics)            # halfway between two axes
    assert fig.layout.polar.domain.y[0] > 0.15 and fig.layout.legend.y < fig.layout.polar.domain.y[0]
