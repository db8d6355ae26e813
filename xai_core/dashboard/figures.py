"""Plotly figures of the dashboard: the on-request raw-value heatmap, ranking, radar and the
per-class grid."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .overlay import OverlayStyle, colormap_lut, polarised

BOX_COLOUR = "#00e5ff"


def _plotly_scale(name: str) -> list:
    lut = colormap_lut(name)
    idx = np.linspace(0, 255, 11).round().astype(int)
    return [[i / 10.0, f"rgb({lut[j, 0]},{lut[j, 1]},{lut[j, 2]})"] for i, j in enumerate(idx)]


def _boxes(fig: go.Figure, boxes: Sequence[tuple], *, highlight: str | None = None) -> None:
    for name, x0, y0, x1, y1 in boxes:
        # Pixel edges: a box [x0, x1) covers pixel centres x0 … x1 − 1.
        fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                      line=dict(color=BOX_COLOUR, width=3 if name == highlight else 1.5))
        fig.add_annotation(x=x0 - 0.5, y=y0 - 0.5, text=name, showarrow=False, xanchor="left", yanchor="bottom",
                           font=dict(color=BOX_COLOUR, size=11))


def _square(fig: go.Figure, h: int, w: int, title: str) -> go.Figure:
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(title=dict(text=title, font=dict(size=13)), margin=dict(l=0, r=0, t=28, b=0), height=320)
    return fig


def picture_figure(image: np.ndarray, boxes: Sequence[tuple], title: str = "image") -> go.Figure:
    """The stored image at full resolution with its ground-truth boxes."""
    fig = go.Figure(go.Image(z=image, hovertemplate="x=%{x} y=%{y}<br>rgb=%{z}<extra></extra>"))
    _boxes(fig, boxes)
    return _square(fig, image.shape[0], image.shape[1], title)


def heatmap_figure(saliency: np.ndarray, vmax: float, style: OverlayStyle, *, image: np.ndarray | None = None,
                   boxes: Sequence[tuple] = (), title: str = "", highlight: str | None = None) -> go.Figure:
    """One explainer's map as an interactive heatmap: colours follow the page's polarity,
    clipping and colour map; hovering shows the raw value. With ``style.overlay`` the image
    is drawn underneath at ``1 − opacity`` visibility."""
    h, w = saliency.shape
    p = polarised(saliency, style.polarity)
    vmax = float(vmax) if vmax > 0 else 1.0
    zmin = -vmax if style.signed else 0.0
    fig = go.Figure()
    if style.overlay and image is not None and image.shape[:2] == (h, w):
        fig.add_trace(go.Image(z=image, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(
        z=p, customdata=np.asarray(saliency, dtype=np.float64), zmin=zmin, zmax=vmax,
        colorscale=_plotly_scale(style.colormap), opacity=style.opacity if style.overlay and image is not None else 1.0,
        hovertemplate="x=%{x} y=%{y}<br>raw=%{customdata:.4g}<br>shown=%{z:.4g}<extra></extra>",
        colorbar=dict(thickness=10, len=0.8),
    ))
    _boxes(fig, boxes, highlight=highlight)
    return _square(fig, h, w, title)


def ranking_figure(comp: pd.DataFrame, labels: dict[str, str] | None = None) -> go.Figure:
    """Horizontal bars of the comprehensive score, best on top; ``labels`` renames the bars
    (an explainer that breaks its axiom carries a warning mark: ``notes.marked``)."""
    d = comp.dropna(subset=["score"]).sort_values("score")
    names = [labels.get(e, e) for e in d["explainer"]] if labels else d["explainer"]
    fig = go.Figure(go.Bar(x=d["score"], y=names, orientation="h", text=[f"{v:.3f}" for v in d["score"]],
                           textposition="auto", hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_layout(xaxis=dict(range=[0, 1], title="comprehensive score (higher is better)"),
                      margin=dict(l=0, r=10, t=10, b=40), height=80 + 36 * len(d))
    return fig


def wrap_label(text: str, width: int = 12) -> str:
    """``text`` with ``<br>`` between words so that no line is much longer than ``width``."""
    lines, cur = [], ""
    for w in str(text).split():
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "<br>".join(lines + [cur]) if cur or lines else str(text)


# Plotly's default qualitative colours, opaque in lines and legend; the fill carries the alpha.
_TRACE_RGB = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def radar_figure(long: pd.DataFrame, metric_names: Sequence[str], labels: dict[str, str] | None = None) -> go.Figure:
    """One closed polygon per explainer over the metrics' mean [0, 1] scores."""
    labels = labels or {}
    theta = [wrap_label(labels.get(m, m), 11) for m in metric_names]
    fig = go.Figure()
    for i, (e, g) in enumerate(long.groupby("explainer", sort=False)):
        means = dict(zip(g["metric"], g["mean"]))
        r = [means.get(m, np.nan) for m in metric_names]
        rgb = ",".join(map(str, _TRACE_RGB[i % len(_TRACE_RGB)]))
        # Opaque lines (and so legend entries, issue 18: a trace opacity of 0.6 made them pale),
        # translucent fill so every polygon stays visible.
        fig.add_trace(go.Scatterpolar(r=r + r[:1], theta=theta + theta[:1], name=str(e), fill="toself",
                                      line=dict(color=f"rgb({rgb})", width=2), fillcolor=f"rgba({rgb},0.12)",
                                      hovertemplate="%{theta}: %{r:.3f}<extra>" + str(e) + "</extra>"))
    n = max(1, len(metric_names))
    # The radial tick labels sit halfway between the first two metric axes, where the polygons
    # are thinnest, instead of on the first axis under every shape's vertex.
    # The polar area leaves room below for the wrapped bottom label, the legend goes under it.
    fig.update_layout(polar=dict(domain=dict(x=[0.12, 0.88], y=[0.24, 0.95]),
                                 radialaxis=dict(range=[0, 1], angle=90 - 180.0 / n, tickangle=90 - 180.0 / n,
                                                 tickvals=[0.25, 0.5, 0.75, 1.0], tickfont=dict(size=9, color="#666"),
                                                 layer="above traces"),
                                 angularaxis=dict(rotation=90, direction="clockwise", tickfont=dict(size=11))),
                      margin=dict(l=40, r=40, t=40, b=10), height=500,
                      legend=dict(orientation="h", y=0.11, yanchor="top", x=0.5, xanchor="center"))
    return fig


def class_heatmap_figure(frame: pd.DataFrame, group: str, counts: dict[str, int] | None = None,
                         names: dict[str, str] | None = None) -> go.Figure:
    """Classes × ``group`` (``"metric"`` or ``"explainer"``) grid of mean scores, each cell
    labelled with its value: readable where grouped bars (20 classes × 4 metrics = 80 bars)
    were not (issue 12). ``counts`` {class: n} is appended to the row labels."""
    names = names or {}
    counts = counts or {}
    classes = list(dict.fromkeys(frame["class"]))
    groups = list(dict.fromkeys(frame[group]))
    z = frame.pivot_table(index="class", columns=group, values="mean", sort=False, dropna=False).reindex(
        index=classes, columns=groups)
    n = frame.pivot_table(index="class", columns=group, values="n", sort=False, dropna=False).reindex(
        index=classes, columns=groups)
    zv = z.to_numpy(dtype=np.float64)
    text = [[f"{v:.2f}" if np.isfinite(v) else "—" for v in row] for row in zv]
    ylab = [f"{c} (n={counts[c]})" if c in counts else c for c in classes]
    xlab = [wrap_label(names.get(str(g), str(g)), 14) for g in groups]
    fig = go.Figure(go.Heatmap(
        z=zv, x=xlab, y=ylab, zmin=0.0, zmax=1.0, colorscale="Viridis", text=text, texttemplate="%{text}",
        customdata=n.to_numpy(dtype=np.float64), colorbar=dict(title="mean", thickness=10),
        hovertemplate="%{y}<br>%{x}<br>mean %{z:.4f} over %{customdata:.0f} results<extra></extra>", xgap=1, ygap=1))
    fig.update_layout(yaxis=dict(autorange="reversed"), xaxis=dict(side="top"),
                      margin=dict(l=0, r=10, t=60, b=10), height=90 + 26 * len(classes))
    return fig
