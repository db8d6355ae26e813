"""The "Compare runs" page's views of a :class:`~.compare.Comparison`: the maps of one matched
label side by side on one colour scale, the forest plot of the score differences, and the
page's state fields (URL and session)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..labels import TAGS
from .assessment import LOCALISATION_TAGS
from .compare import NOT_IN_RUN, TAG_CHOICES, Comparison, explainer_pairs
from .legend import legend
from .overlay import POLARITIES, OverlayStyle, clip_value
from .render import MapStore, detail_pictures
from .state import Field
from .tables import RunTables


def differences_figure(diffs: pd.DataFrame):
    """Forest plot: the mean difference B − A of each explainer × metric with its interval."""
    import plotly.graph_objects as go

    d = diffs[np.isfinite(diffs["diff"].to_numpy(np.float64))]
    y = [f"{e} · {m}" for e, m in zip(d["explainer"], d["metric_name"])]
    colour = {"B better": "#1a9850", "A better": "#d73027"}
    fig = go.Figure(go.Scatter(
        x=d["diff"], y=y, mode="markers", marker=dict(size=8, color=[colour.get(v, "#555") for v in d["verdict"]]),
        error_x=dict(type="data", symmetric=False, array=(d["ci_high"] - d["diff"]).to_numpy(),
                     arrayminus=(d["diff"] - d["ci_low"]).to_numpy(), thickness=1.5),
        customdata=np.c_[d["ci_low"], d["ci_high"], d["n"]], text=d["verdict"],
        hovertemplate="%{y}<br>B − A %{x:+.4f} [%{customdata[0]:+.4f}, %{customdata[1]:+.4f}]"
                      "<br>%{customdata[2]:.0f} pairs · %{text}<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#888", dash="dot"))
    fig.update_layout(xaxis=dict(title="mean score difference B − A (> 0: B's explanations score higher)"),
                      yaxis=dict(autorange="reversed"), margin=dict(l=0, r=10, t=10, b=40),
                      height=80 + 22 * len(d), showlegend=False)
    return fig


# ---- maps side by side ---------------------------------------------------------------------
@dataclass(frozen=True)
class SidePair:
    """PNGs of one matched row: each run's image and map (None where that run has no map),
    the shared clip value, its legend and notes (why a map is missing)."""

    picture_a: bytes
    picture_b: bytes
    tile_a: bytes | None
    tile_b: bytes | None
    vmax: float
    legend: object
    notes: tuple[str, ...]


def _row_map(t: RunTables, store: MapStore, lrow: int, explainer: str):
    if lrow < 0 or explainer not in t.explainers:
        return None
    return store.saliency(explainer, int(t.lcol("part")[lrow]), int(t.lcol("map_offset")[lrow]))


def side_by_side(cmp: Comparison, store_a: MapStore, store_b: MapStore, row, explainer_a: str, explainer_b: str,
                 style: OverlayStyle) -> SidePair:
    """The maps of ``row`` (a row of :attr:`Comparison.rows`) for explainer_a in A and explainer_b
    in B, drawn on **one** colour scale: the clip percentile of both maps together."""
    pa, pb = int(cmp.pos_a[row.m]), int(cmp.pos_b[row.m])
    img_a = store_a.image(int(cmp.a.scol("part")[pa]), int(cmp.a.scol("offset")[pa]))
    img_b = store_b.image(int(cmp.b.scol("part")[pb]), int(cmp.b.scol("offset")[pb]))
    ma = _row_map(cmp.a, store_a, int(row.lrow_a), explainer_a)
    mb = _row_map(cmp.b, store_b, int(row.lrow_b), explainer_b)
    notes = []
    for m, run, e, explained in ((ma, "A", explainer_a, row.explained_a), (mb, "B", explainer_b, row.explained_b)):
        if m is None:
            notes.append(f"run {run} has no map of {e} for {row['class']}: "
                         + ("the label was not explained there (TN, not in its top-k)" if not explained
                            else f"no explainer {e!r} in that run"))
    vmax = clip_value([m for m in (ma, mb) if m is not None], style)
    boxes_a = [(cmp.a.class_name(b[0]), *b[1:]) for b in cmp.a.boxes(pa)]
    boxes_b = [(cmp.b.class_name(b[0]), *b[1:]) for b in cmp.b.boxes(pb)]
    pic_a, tiles_a = detail_pictures(img_a, {} if ma is None else {"m": (ma, vmax)}, style, boxes_a,
                                     highlight=row["class"])
    pic_b, tiles_b = detail_pictures(img_b, {} if mb is None else {"m": (mb, vmax)}, style, boxes_b,
                                     highlight=row["class"])
    signed = any(bool(t.explainer_meta(e).get("signed", True)) for t, e in ((cmp.a, explainer_a), (cmp.b, explainer_b)))
    return SidePair(pic_a, pic_b, tiles_a.get("m"), tiles_b.get("m"), vmax, legend(style, [vmax], signed_maps=signed),
                    tuple(notes))


# ---- the page's state (URL and session, pages/_common.restore / remember) --------------------
def run_b_field(others: Sequence[str]):
    return Field("vs_run", others[0] if others else "", "str", tuple(others))


def row_key(row) -> str:
    """"green:s001": a matched row's key in the URL (label name, sample id)."""
    return f"{row['class']}:{row.sample_id}"


def row_field(row_keys: Sequence[str]):
    """The matched row whose maps are shown, among those the filters keep."""
    return Field("vs_row", row_keys[0] if row_keys else "", "str", tuple(row_keys))


def compare_fields(cmp: Comparison) -> list:
    """The page's widgets after run B is chosen (but the row, :func:`row_field`): filters, the
    explainers of the maps, the map display and the tags the score differences count."""
    pairs = explainer_pairs(cmp)
    first = pairs[0] if pairs else (next(iter(cmp.a.explainers), ""), next(iter(cmp.b.explainers), ""))
    style = OverlayStyle()
    return [
        Field("vs_tags_a", [], "strs", TAG_CHOICES),
        Field("vs_tags_b", [], "strs", TAG_CHOICES + (NOT_IN_RUN,)),
        Field("vs_labels", [], "ints", tuple(int(x) for x in np.unique(cmp.rows["label"]))),
        Field("vs_changed", True, "bool"),
        Field("vs_exp_a", first[0], "str", tuple(cmp.a.explainers)),
        Field("vs_exp_b", first[1], "str", tuple(cmp.b.explainers)),
        Field("vs_overlay", style.overlay, "bool"),
        Field("vs_polarity", style.polarity, "str", POLARITIES),
        Field("vs_clip", style.clip_percentile, "float", lo=90.0, hi=100.0),
        Field("vs_tags", [], "strs", TAGS),
        Field("vs_loc_tags", list(LOCALISATION_TAGS), "strs", TAGS),
    ]
