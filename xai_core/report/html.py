"""The report as one self-contained HTML file: styles inline, pictures as ``data:`` URIs and
plotly's JavaScript bundle inline (the plotly package ships it), so it opens from disk in any
browser with no server and no network. ``charts=False`` leaves the interactive charts out
(their numbers are in the tables) for renderers without JavaScript, such as a PDF engine."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

from .content import ReportData
from .gallery import ExplainerGallery, Tile

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1180px;
 padding:24px;color:#1d2433;line-height:1.45}
h1{font-size:1.6em;margin:0 0 .2em}h2{border-bottom:1px solid #d7dbe3;padding-bottom:.2em;margin-top:1.8em}
h3{margin:1.2em 0 .4em}.muted{color:#5b6475;font-size:.9em}
table.t{border-collapse:collapse;font-size:.86em;margin:.4em 0 1em}
table.t th,table.t td{border:1px solid #d7dbe3;padding:3px 7px;text-align:right;vertical-align:top}
table.t th{background:#f1f3f7}table.t td:first-child,table.t th:first-child{text-align:left}
table.kv td:first-child{font-weight:600;white-space:nowrap}table.kv td{text-align:left}
.tags span{display:inline-block;margin-right:1.2em;font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:10px;margin:.3em 0 1em}
.tile{border:1px solid #d7dbe3;border-radius:4px;padding:4px;font-size:.78em;width:268px}
.tile img{width:128px;height:128px;image-rendering:pixelated;object-fit:contain}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}.charts>div{min-width:0}
pre{background:#f6f7f9;padding:8px;font-size:.8em;overflow:auto;max-height:420px}
nav a{margin-right:1em}
@page{size:A4 landscape;margin:12mm}
@media print{.charts{display:none}nav{display:none}}
"""


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _png(data: bytes, alt: str) -> str:
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def table(df: pd.DataFrame, *, index: bool = False, digits: int = 3) -> str:
    """A DataFrame as an escaped HTML table; floats with ``digits`` decimals, — for NaN."""
    if df is None or not len(df):
        return '<p class="muted">(none)</p>'
    return df.to_html(index=index, escape=True, na_rep="—", border=0, classes="t",
                      float_format=lambda v: f"{v:.{digits}f}")


def _kv(rows) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="t kv">{body}</table>'


# One template wherever the report is made: inside the dashboard, Streamlit makes its own
# template (placeholder colours #000001…, no fonts, filled in by its front end only) the plotly
# default, and a downloaded report drew black, unlabelled charts.
REPORT_TEMPLATE = "plotly_white"
# A chart is drawn as soon as its script is parsed: the grid's tracks do not depend on the charts
# that follow (a flex row did, so the first chart took the row's whole width), and every chart is
# fitted to its cell again once the page has loaded.
_FIT = ("<script>window.addEventListener('load', () => document.querySelectorAll('.plotly-graph-div')"
        ".forEach(d => window.Plotly && Plotly.Plots.resize(d)));</script>")


def _figure(fig, div_id: str) -> str:
    import plotly.io as pio

    fig.update_layout(template=pio.templates[REPORT_TEMPLATE], autosize=True, width=None)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def _tile(t: Tile, metric: str) -> str:
    return (f'<div class="tile">{_png(t.picture, f"{t.sample_id} image")}{_png(t.overlay, f"{t.sample_id} map")}'
            f"<div><b>{_esc(t.sample_id)}</b> · {_esc(t.label)} · {_esc(t.tag)} · {_esc(metric)} {t.score:.3f}</div></div>")


def _gallery(galleries: list[ExplainerGallery], metric: str) -> str:
    parts = []
    for g in galleries:
        parts.append(f"<h3>{_esc(g.explainer)}</h3>")
        for what, tiles in (("best", g.best), ("worst", g.worst)):
            inner = "".join(_tile(t, metric) for t in tiles) or '<p class="muted">(no scored sample)</p>'
            parts.append(f'<div class="muted">{what} by {_esc(metric)}</div><div class="row">{inner}</div>')
        parts += [f'<p class="muted">{_esc(e)}</p>' for e in g.errors]
    return "".join(parts) or '<p class="muted">(no gallery: the run has no per-label scores)</p>'


def _charts(data: ReportData) -> tuple[str, str]:
    """(ranking and radar, per-class heatmap) as plotly divs."""
    if not len(data.long) or not len(data.ranking):
        return "", ""
    from ..dashboard import assessment as A
    from ..dashboard.figures import class_heatmap_figure, radar_figure, ranking_figure

    out = [_figure(ranking_figure(A.comprehensive(data.long, data.weights)), "fig_ranking")]
    metrics = list(data.metric_names)
    if len(metrics) >= 3:
        out.append(_figure(radar_figure(data.long, metrics, data.metric_names), "fig_radar"))
    charts = "".join(f"<div>{c}</div>" for c in out)
    heat = ""
    if len(data.per_class):
        pc = data.per_class.copy()
        pc["class"] = pc["class"].astype(str)
        melt = pc.melt(id_vars=["class", "n"], var_name="explainer", value_name="mean")
        heat = _figure(class_heatmap_figure(melt, "explainer", dict(zip(pc["class"], pc["n"]))), "fig_classes")
    return f'<div class="charts">{charts}</div>', heat


def _steps(steps, charts: bool) -> str:
    """The scores-over-steps section of a run of several steps (:mod:`xai_core.dashboard.steps`)."""
    if steps is None:
        return ""
    from ..dashboard.steps import scores_figure

    cols = ["step", "explainer", "metric", "n", "mean", "ci_low", "ci_high"]
    chart = _figure(scores_figure(steps.scores, steps.score_names), "fig_steps") if charts else ""
    return ('<h2 id="steps">Scores over steps</h2><p class="muted">The run holds the explanations of the same probe '
            "images at several steps of a training; per explainer and metric the mean [0, 1] score at each step with "
            "its 95 % bootstrap interval, and the explained labels by tag.</p>"
            f'<div class="charts"><div>{chart}</div></div>' + table(steps.scores[cols])
            + table(steps.tags.reset_index()))


def render_html(data: ReportData, galleries: list[ExplainerGallery], *, charts: bool = True, steps=None) -> str:
    """The whole report. ``charts``: plotly's bundle and the interactive charts inline;
    ``steps``: a :class:`~xai_core.dashboard.steps.StepsSummary` for a run of several steps."""
    chart_html, heat_html = _charts(data) if charts else ("", "")
    js = ""
    if charts and (chart_html or steps is not None):
        import plotly.offline

        js = f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>'
    tags = "".join(f"<span>{_esc(k)} {v}</span>" for k, v in data.tags.items())
    cls = pd.DataFrame({"metric": list(data.classification),
                        "value": [str(v) if k == "images" else f"{v:.3f}" for k, v in data.classification.items()]})
    weights = " · ".join(f"{_esc(data.metric_names.get(m, m))} {w:.3f}" for m, w in data.weights.items())
    sanity = (_kv([(e, v) for e, v in data.sanity.items()]) if data.sanity
              else '<p class="muted">The randomisation sanity check was not run for this run.</p>')
    counts = data.class_counts
    counts = counts[(counts.drop(columns=["label", "class"]).to_numpy() > 0).any(1)] if len(counts) else counts
    notes = "".join(f'<p class="muted">{_esc(n)}</p>' for n in data.notes)
    if not charts:
        notes += ('<p class="muted">This copy has no interactive charts (the HTML report has them); their numbers are '
                  "in the tables.</p>")
    sections = [
        f"<h1>{_esc(data.title)}</h1>",
        '<nav><a href="#identity">Identity</a><a href="#predictions">Predictions</a><a href="#ranking">Ranking</a>'
        '<a href="#classes">Per class</a><a href="#sanity">Sanity</a><a href="#gallery">Gallery</a></nav>',
        notes,
        '<h2 id="identity">Identity</h2>', _kv(data.identity),
        "<details><summary>Configuration</summary><pre>"
        f"{_esc(json.dumps(data.config, indent=2, default=str, allow_nan=True))}</pre></details>",
        '<h2 id="predictions">Predictions</h2>',
        f'<p class="tags">{tags}</p><p class="muted">(image, label) rows explained, by tag: TP ground truth and '
        "predicted · FP predicted only · FN ground truth only · TN neither (explained as a top-k label)</p>",
        table(cls), "<details><summary>Per class: images and explained labels by tag</summary>"
        f"{table(counts)}</details>",
        '<h2 id="ranking">Weighted ranking</h2>',
        f'<p class="muted">Comprehensive score = Σ wᵢ · meanᵢ of the [0, 1] scores (higher is better). Weights '
        f"(normalised): {weights or '—'}. Counted: {_esc(data.counted)}. Each mean with its 95 % bootstrap interval.</p>",
        table(data.ranking), chart_html, _steps(steps, charts),
        "<details><summary>Metrics: what each one measures</summary>" + table(data.metrics) + "</details>",
        '<h2 id="classes">Per class</h2>',
        '<p class="muted">Weighted score per class and explainer (the same weights; n = explained labels of the '
        "class).</p>", table(data.per_class), heat_html,
        '<h2 id="sanity">Sanity check</h2>',
        '<p class="muted">Cascading model randomisation: an explainer passes when its maps stop resembling the '
        "originals (Spearman similarity below 0.5) once the model's layers are randomised.</p>", sanity,
        '<h2 id="gallery">Gallery</h2>',
        f'<p class="muted">Per explainer, the best and the worst explained (image, label) rows by '
        f"{_esc(data.gallery_metric_name or '—')} ([0, 1], higher is better), among the {_esc(data.gallery_tags)} "
        "labels; each explainer's maps share one colour scale.</p>", _gallery(galleries, data.gallery_metric_name),
    ]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(data.title)}</title><style>{CSS}</style>{js}</head><body>"
            + "".join(s for s in sections if s) + (_FIT if js else "") + "</body></html>")

