"""What a run's report says, as plain data (tables and figures), gathered from the same
aggregation code as the dashboard (``xai_core.dashboard``): identity, tags and classification
metrics, the weighted ranking with its intervals, the per-class table, the sanity verdicts and
a gallery of the best and worst explained samples per explainer."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import XaiError
from ..dashboard import assessment as A
from ..dashboard.predictions import classification_summary
from ..dashboard.tables import RunTables
from ..labels import TAGS


@dataclass(frozen=True)
class ReportOptions:
    """``weights`` {metric: w ≥ 0} (metrics not named: 1, as on the assessment page), ``rows_filter`` the tags averaged (as on the
    assessment pages), ``metric`` the gallery's sort metric (None: the first faithfulness
    metric, else the first scored one), ``per_explainer`` best and worst samples each."""

    weights: Mapping[str, float] | None = None
    rows_filter: A.RowFilter = A.RowFilter()
    metric: str | None = None
    per_explainer: int = 3
    gallery_tags: tuple[str, ...] = ("TP",)   # rows the gallery ranks (empty: every tag)
    max_classes: int = 40      # rows of the per-class table (the classes explained most often)

    def __post_init__(self):
        if not 0 <= self.per_explainer <= 12:
            raise XaiError(f"report: {self.per_explainer} best and worst samples per explainer; expected 0 … 12")
        bad = [x for x in self.gallery_tags if x not in TAGS]
        if bad:
            raise XaiError(f"report: unknown tag(s) {bad} for the gallery; expected some of {list(TAGS)}")


@dataclass
class ReportData:
    title: str
    identity: list[tuple[str, str]]
    config: dict
    tags: dict[str, int]
    classification: dict[str, float]
    class_counts: pd.DataFrame
    weights: dict[str, float]           # normalised
    counted: str                        # which tags the aggregates average
    ranking: pd.DataFrame               # rank, explainer, comprehensive, one "mean [lo, hi]" per metric, sanity
    metrics: pd.DataFrame               # what each metric measures
    long: pd.DataFrame                  # explainer × metric means (for the charts)
    metric_names: dict[str, str]
    per_class: pd.DataFrame             # class (n) × explainer weighted score
    sanity: dict[str, str]
    gallery_metric: str = ""
    gallery_metric_name: str = ""
    gallery_tags: str = ""
    notes: list[str] = field(default_factory=list)


def _text(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_text(x) for x in v)
    return str(v)


def identity_rows(t: RunTables, run_name: str) -> list[tuple[str, str]]:
    """(field, value) lines: run, status, dates, model, dataset, explainers, metrics, versions."""
    m = t.manifest
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    ds = m.get("dataset") if isinstance(m.get("dataset"), dict) else {}
    src = next((f"{k}: {model[k]}" for k in ("factory", "torchscript", "onnx", "url") if model.get(k)), "—")
    hashes = ", ".join(f"{k} {v}" for k, v in model.items() if k.endswith("sha256") and v)
    fast = model.get("fast_forward") if isinstance(model.get("fast_forward"), dict) else {}
    rows = [
        ("run", run_name),
        ("status", f"{m.get('status', '?')}" + (f" — {m.get('error')}" if m.get("error") else "")),
        ("created / finished", f"{m.get('created') or '—'} / {m.get('finished') or '—'}"),
        ("model", src + (f" (weights {model['weights']})" if model.get("weights") else "")),
        ("model identity", hashes or "no file hash (a Python factory: its code is not hashed)"),
        ("activation · input size · channels", f"{_text(model.get('activation'))} · {_text(model.get('input_size'))} · "
                                              f"{_text(model.get('channels'))}"),
        ("forward passes", _text(fast.get("backend")) if fast else "torch"),
        ("dataset", f"{_text(ds.get('kind'))}: {_text(ds.get('path'))}" + (f" (split {ds['split']})" if ds.get("split") else "")),
        ("dataset identity", f"sha256 {_text(ds.get('sha256'))} · {_text(ds.get('n_items'))} items"),
        ("samples in this run", str(t.n_samples)),
        ("classes", f"{len(t.classes)}: " + ", ".join(t.classes[:12]) + (" …" if len(t.classes) > 12 else "")),
        ("explainers", ", ".join(f"{e.get('name')} ({e.get('type', e.get('name'))})"
                                 for e in m.get("explainers", []) if isinstance(e, dict))),
        ("metrics", ", ".join(str(x.get("name")) for x in t.metrics)),
        ("versions", f"written by xaiboard {_text(m.get('xaiboard_version'))} (summary format "
                     f"v{_text(m.get('format_version'))}); report by xaiboard {__version__}, Python "
                     f"{platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}"),
        ("report made", datetime.now(timezone.utc).replace(microsecond=0).isoformat()),
    ]
    timing = m.get("timing") if isinstance(m.get("timing"), dict) else {}
    if timing.get("seconds") is not None:
        rows.insert(3, ("run time", f"{timing['seconds']:.0f} s, {_text(timing.get('model_passes'))} model passes"))
    return rows


def tag_counts(t: RunTables) -> dict[str, int]:
    codes = t.lcol("tag")
    return {tag: int((codes == i).sum()) for i, tag in enumerate(TAGS)}


def _interval_text(mean, lo, hi) -> str:
    if not np.isfinite(mean):
        return A.MISSING
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else f"{mean:.3f}"


def ranking_frame(table: pd.DataFrame, infos: list[A.MetricInfo]) -> pd.DataFrame:
    """The assessment table as text: rank, explainer, comprehensive, each metric's mean with
    its 95 % interval, metrics used, sanity."""
    out = pd.DataFrame({"rank": table["rank"].astype(str), "explainer": table["explainer"],
                        "comprehensive": [f"{v:.3f}" if np.isfinite(v) else A.MISSING for v in table["comprehensive"]]})
    for m in infos:
        if f"{m.name} mean" in table:
            out[m.score_name] = [_interval_text(a, b, c) for a, b, c in zip(
                table[f"{m.name} mean"], table[f"{m.name} ci_low"], table[f"{m.name} ci_high"])]
    out["metrics used"] = table["metrics_used"]
    if "sanity" in table:
        out["sanity"] = table["sanity"]
    return out


def per_class_frame(t: RunTables, weights: Mapping[str, float], rows_filter: A.RowFilter,
                    max_classes: int) -> pd.DataFrame:
    """Classes × explainers: Σ wᵢ · meanᵢ over the metrics with a finite mean for that class
    (weights renormalised over them, as the comprehensive score), for the classes explained
    most often; ``n`` = explained (image, label) rows of the class."""
    pc = A.per_class(t, rows_filter)
    counts = A.class_counts(t).set_index("class")["explained"]
    w = A.normalise_weights(weights)
    pc = pc[pc["metric"].isin([m for m, v in w.items() if v > 0]) & np.isfinite(pc["mean"].to_numpy(np.float64))]
    pc = pc.assign(w=pc["metric"].map(w))
    pc = pc.assign(wm=pc["w"] * pc["mean"])
    g = pc.groupby(["class", "explainer"], sort=False)[["wm", "w"]].sum()
    score = (g["wm"] / g["w"]).unstack("explainer")
    classes = [c for c in counts.sort_values(ascending=False, kind="stable").index if counts[c] > 0][:max_classes]
    score = score.reindex(index=[c for c in classes if c in score.index], columns=[e for e in t.explainers if e in score.columns])
    score.insert(0, "n", [int(counts[c]) for c in score.index])
    score.index.name = "class"
    score.columns.name = None
    return score.reset_index()


def gallery_metric(t: RunTables, wanted: str | None) -> A.MetricInfo | None:
    infos = [m for m in A.scored_metric_infos(t) if not m.label_agnostic]
    if wanted is not None:
        hit = next((m for m in infos if m.name == wanted), None)
        if hit is None:
            raise XaiError(f"report: metric {wanted!r} has no per-label scores in this run; expected one of "
                           f"{[m.name for m in infos]}")
        return hit
    return next((m for m in infos if m.category == "faithfulness"), infos[0] if infos else None)


def gather(t: RunTables, run_name: str, opts: ReportOptions) -> ReportData:
    """Everything but the pictures (see :mod:`.gallery`)."""
    infos = A.scored_metric_infos(t)
    weights = {m.name: 1.0 for m in infos} | dict(opts.weights or {})   # unnamed metrics keep weight 1
    unknown = sorted(set(weights) - {m.name for m in infos})
    if unknown:
        raise XaiError(f"report: weights for metrics this run has no scores of: {unknown}; expected some of "
                       f"{[m.name for m in infos]}")
    notes = []
    ranking = pd.DataFrame()
    long = pd.DataFrame(columns=["explainer", "metric", "mean"])
    per_class = pd.DataFrame()
    norm: dict[str, float] = {}
    if infos:
        norm = A.normalise_weights(weights)
        long = A.explainer_metric_table(t, rows_filter=opts.rows_filter)
        ranking = ranking_frame(A.assessment_table(t, long, weights), infos)
        per_class = per_class_frame(t, weights, opts.rows_filter, opts.max_classes)
    else:
        notes.append("This run has no evaluation scores: no ranking, per-class table or gallery.")
    gm = gallery_metric(t, opts.metric)
    return ReportData(
        title=f"Explanation report: {run_name}",
        identity=identity_rows(t, run_name),
        config=t.manifest.get("config") if isinstance(t.manifest.get("config"), dict) else {},
        tags=tag_counts(t),
        classification=classification_summary(t),
        class_counts=A.class_counts(t),
        weights=norm,
        counted=opts.rows_filter.text,
        ranking=ranking,
        metrics=A.metrics_frame(infos),
        long=long,
        metric_names={m.name: m.score_name for m in infos},
        per_class=per_class,
        sanity=A.sanity_column(t.manifest),
        gallery_metric=gm.name if gm else "",
        gallery_metric_name=gm.score_name if gm else "",
        gallery_tags=", ".join(opts.gallery_tags) or "every tag",
        notes=notes,
    )
