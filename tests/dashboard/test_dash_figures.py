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
