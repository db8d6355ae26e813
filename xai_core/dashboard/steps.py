"""The dashboard over the steps of a run (FORMAT.md "Steps"): scores over steps with their
bootstrap bands, tags over steps and the images that changed tag, how much each image's map
changed between two steps, and colour scales shared across steps. No Streamlit here.

**Map distance.** The change of a map between steps a and b is the total-variation distance of
the maps' magnitudes taken as distributions over the pixels:

    d(a, b) = ½ · Σ_pixels | |s_a| / Σ|s_a|  −  |s_b| / Σ|s_b| |   ∈ [0, 1]

0 when both maps put the same share of their mass on every pixel, 1 when they highlight
disjoint pixels. It ignores the maps' overall scale (which drifts as the logits grow during
training) and their sign; a flat-zero map counts as uniform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import XaiError
from ..labels import TAGS
from ..summary.reader import RunReader
from .assessment import explainer_metric_table, metric_infos
from .overlay import OverlayStyle, clip_value, scale_values
from .tables import RunTables


def step_tables(t: RunTables) -> dict[int, RunTables]:
    """{step: the tables of that step} of the run ``t`` belongs to (``t`` itself for its step)."""
    root = t.run_root if t.run_root is not None else t.run_dir
    return {s: (t if s == t.step else RunTables.load(root, root=t.root, step=s)) for s in t.steps or (t.step,)}


def scores_over_steps(by_step: dict[int, RunTables]) -> pd.DataFrame:
    """One row per step × explainer × metric: ``step`` and the columns of
    :func:`~.assessment.explainer_metric_table` (mean of the [0, 1] score, 95 % bootstrap interval)."""
    frames = [explainer_metric_table(t).assign(step=s) for s, t in sorted(by_step.items())]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return out[["step", *[c for c in out.columns if c != "step"]]] if len(out) else out


def tags_over_steps(by_step: dict[int, RunTables]) -> pd.DataFrame:
    """Index ``step``, one column per tag (TP, FP, FN, TN): explained labels with that tag."""
    rows = {s: t.labels["tag"].value_counts().reindex(list(TAGS), fill_value=0) for s, t in sorted(by_step.items())}
    out = pd.DataFrame(rows).T.astype(int)
    out.index.name = "step"
    return out


def _keyed(t: RunTables) -> pd.DataFrame:
    lab = t.labels
    return pd.DataFrame({"sample_index": lab["sample_index"].to_numpy(), "label": lab["label"].to_numpy(),
                         "tag": lab["tag"].astype(str).to_numpy(), "prob": lab["prob"].to_numpy(),
                         "part": lab["part"].to_numpy(), "map_offset": lab["map_offset"].to_numpy()})


def tag_changes(a: RunTables, b: RunTables) -> pd.DataFrame:
    """The (image, label) pairs whose tag differs between the steps of ``a`` and ``b``:
    sample_id, class, tag_a, tag_b, prob_a, prob_b ("—" where the label was not explained)."""
    ka, kb = _keyed(a), _keyed(b)
    m = ka.merge(kb, on=["sample_index", "label"], how="outer", suffixes=("_a", "_b"))
    m[["tag_a", "tag_b"]] = m[["tag_a", "tag_b"]].fillna("—")
    m = m[m["tag_a"] != m["tag_b"]]
    ids = dict(zip(b.samples["sample_index"], b.samples["sample_id"]))
    return pd.DataFrame({"sample_id": m["sample_index"].map(ids).to_numpy(),
                         "class": [b.class_name(int(x)) for x in m["label"]],
                         "tag_a": m["tag_a"].to_numpy(), "tag_b": m["tag_b"].to_numpy(),
                         "prob_a": m["prob_a"].to_numpy(), "prob_b": m["prob_b"].to_numpy()}).reset_index(drop=True)


def map_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance of the maps' normalised magnitudes (module docstring), in [0, 1]."""
    pa, pb = np.abs(np.asarray(a, np.float64)).ravel(), np.abs(np.asarray(b, np.float64)).ravel()
    if pa.shape != pb.shape:
        raise XaiError(f"maps of {np.shape(a)} and {np.shape(b)} pixels cannot be compared; expected one size")
    pa = pa / pa.sum() if pa.sum() > 0 else np.full_like(pa, 1.0 / pa.size)
    pb = pb / pb.sum() if pb.sum() > 0 else np.full_like(pb, 1.0 / pb.size)
    return float(0.5 * np.abs(pa - pb).sum())


def map_changes(a: RunTables, b: RunTables, explainer: str) -> pd.DataFrame:
    """Images sorted by how much ``explainer``'s map changed from step a to step b (largest
    first): pos (in ``b``), sample_id, label, class, distance (:func:`map_distance`), tag_a,
    tag_b. The label of an image is the first label row of step b that step a explained too."""
    if explainer not in a.explainers or explainer not in b.explainers:
        raise XaiError(f"no maps of explainer {explainer!r} in both steps; expected one of {b.explainers}")
    ka, kb = _keyed(a), _keyed(b)
    m = kb.merge(ka, on=["sample_index", "label"], how="inner", suffixes=("_b", "_a"))
    m = m.drop_duplicates("sample_index", keep="first")
    ra, rb = RunReader(a.run_dir), RunReader(b.run_dir)
    parts_a = {p: ra.saliency_part(explainer, p) for p in sorted(set(m["part_a"]))}
    parts_b = {p: rb.saliency_part(explainer, p) for p in sorted(set(m["part_b"]))}
    dist = [map_distance(parts_a[pa][oa], parts_b[pb][ob])
            for pa, oa, pb, ob in zip(m["part_a"], m["map_offset_a"], m["part_b"], m["map_offset_b"])]
    sidx = b.samples["sample_index"].to_numpy()
    out = pd.DataFrame({"pos": np.searchsorted(sidx, m["sample_index"].to_numpy()),
                        "sample_id": m["sample_index"].map(dict(zip(sidx, b.samples["sample_id"]))).to_numpy(),
                        "label": m["label"].to_numpy(), "class": [b.class_name(int(x)) for x in m["label"]],
                        "distance": np.asarray(dist, np.float64), "tag_a": m["tag_a"].to_numpy(),
                        "tag_b": m["tag_b"].to_numpy()})
    return out.sort_values(["distance", "pos"], ascending=[False, True], kind="stable").reset_index(drop=True)


def changed_pictures(a: RunTables, b: RunTables, moved: pd.DataFrame, explainer: str, *, n: int = 4,
                     style: OverlayStyle = OverlayStyle()) -> list[tuple[str, bytes, bytes, bytes]]:
    """For the first ``n`` rows of :func:`map_changes`: (caption, image PNG, map at step a PNG,
    map at step b PNG), both maps of a row on one colour scale so that the change shows."""
    from .overlay import png_bytes, render, thumbnail, upscale_factor

    ra, rb = RunReader(a.run_dir), RunReader(b.run_dir)
    ka, kb = (_keyed(t).set_index(["sample_index", "label"]) for t in (a, b))
    out = []
    for _, row in moved.head(n).iterrows():
        s = b.samples.iloc[int(row["pos"])]
        sidx = int(s["sample_index"])
        image = rb.image(int(s["part"]), int(s["offset"]))
        la, lb = ka.loc[(sidx, int(row["label"]))], kb.loc[(sidx, int(row["label"]))]
        ma = ra.saliency(explainer, int(la["part"]), int(la["map_offset"]))
        mb = rb.saliency(explainer, int(lb["part"]), int(lb["map_offset"]))
        vmax = clip_value([ma, mb], style)
        up = upscale_factor(*image.shape[:2])
        out.append((f"{row['sample_id']} · {row['class']} · d = {row['distance']:.3f}",
                    png_bytes(thumbnail(image, upscale=up)),
                    png_bytes(render(image, ma, vmax, style, upscale=up)),
                    png_bytes(render(image, mb, vmax, style, upscale=up))))
    return out


def scales_across_steps(grid_maps: dict, others: list[dict], style: OverlayStyle) -> dict:
    """Clip values of the maps shown ({key: (explainer, map)}, key = (pos, explainer)) shared
    with the same images' maps at the other steps (``others``: one such dict per step), per
    ``style.scale``: one per map becomes one per image × explainer over every step."""
    if style.scale == "map":
        return {k: clip_value([m] + [o[k][1] for o in others if k in o], style) for k, (_, m) in grid_maps.items()}
    union = {(k, 0): v for k, v in grid_maps.items()}
    union.update({(k, i + 1): v for i, o in enumerate(others) for k, v in o.items()})
    shared = scale_values(union, style)
    return {k: shared[(k, 0)] for k in grid_maps}


def across_steps(t: RunTables, style: OverlayStyle):
    """The ``scales`` function of :meth:`~.render.MapStore.grid` sharing each colour scale
    with the same images' maps (same label) at every other step of the run."""
    others = [u for s, u in step_tables(t).items() if s != t.step]
    sidx = t.samples["sample_index"].to_numpy()

    def scales(maps: dict, chips: dict) -> dict:
        other_maps = []
        for u in others:
            r, lab = RunReader(u.run_dir), _keyed(u).set_index(["sample_index", "label"])
            got = {}
            for (pos, e), _ in maps.items():
                key = (int(sidx[pos]), int(chips[pos].label))
                if e in u.explainers and key in lab.index:
                    row = lab.loc[key]
                    got[(pos, e)] = (e, r.saliency(e, int(row["part"]), int(row["map_offset"])))
            other_maps.append(got)
        return scales_across_steps(maps, other_maps, style)

    return scales


@dataclass(frozen=True)
class StepsSummary:
    """What the scores-over-steps page shows: ``scores`` (:func:`scores_over_steps`), ``tags``
    (:func:`tags_over_steps`), ``score_names`` {metric: display name}."""

    scores: pd.DataFrame
    tags: pd.DataFrame
    score_names: dict


def steps_summary(t: RunTables) -> StepsSummary:
    by_step = step_tables(t)
    return StepsSummary(scores_over_steps(by_step), tags_over_steps(by_step),
                        {m.name: m.display_name for m in metric_infos(t)})


def scores_figure(scores: pd.DataFrame, score_names: dict | None = None):
    """Plotly figure: one panel per metric, per explainer a line of the mean [0, 1] score over
    the steps with its 95 % bootstrap band."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = score_names or {}
    metrics = list(dict.fromkeys(scores["metric"])) if len(scores) else []
    fig = make_subplots(rows=1, cols=max(len(metrics), 1), subplot_titles=[names.get(m, m) for m in metrics],
                        shared_yaxes=True)
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for j, m in enumerate(metrics):
        for i, (e, g) in enumerate(scores[scores["metric"] == m].groupby("explainer", sort=False)):
            g = g.sort_values("step")
            colour = palette[i % len(palette)]
            x = g["step"].tolist()
            fig.add_trace(go.Scatter(x=x + x[::-1], y=g["ci_high"].tolist() + g["ci_low"].tolist()[::-1],
                                     fill="toself", fillcolor=colour, opacity=0.18, line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=e), row=1, col=j + 1)
            fig.add_trace(go.Scatter(x=x, y=g["mean"], mode="lines+markers", name=e, legendgroup=e,
                                     line={"color": colour}, showlegend=j == 0), row=1, col=j + 1)
    fig.update_yaxes(range=[0, 1], title_text="score (higher is better)", col=1)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=360, margin={"l": 40, "r": 10, "t": 40, "b": 40})
    return fig
