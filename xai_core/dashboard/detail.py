"""The detail view of one image: its labels, boxes and scores, and the per-map figures of its
explainers (anchor precision, completeness error) in words."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import XaiError
from ..labels import TAGS
from .assessment import metric_infos
from .query import ImageRow, chips_of, image_row
from .tables import RunTables


@dataclass(frozen=True)
class SampleDetail:
    row: ImageRow
    source: str
    height: int
    width: int
    ground_truth: tuple[str, ...]
    boxes: tuple[tuple[str, float, float, float, float], ...]   # (class, x_min, y_min, x_max, y_max)
    scores: pd.DataFrame                                      # label_index, label, explainer, metric, raw, score


def find_pos(t: RunTables, sample_index: int) -> int:
    sidx = t.samples["sample_index"].to_numpy()
    p = int(np.searchsorted(sidx, sample_index))
    if p >= len(sidx) or sidx[p] != sample_index:
        raise XaiError(f"{t.run_dir}: no sample with index {sample_index}")
    return p


def sample_detail(t: RunTables, pos: int) -> SampleDetail:
    """Everything the detail view shows about one image."""
    s = t.samples
    row = image_row(t, pos, chips_of(t, pos), float("nan"))
    sc = t.scores[t.scores["pos"].to_numpy() == pos]
    scores = pd.DataFrame({
        "label_index": sc["label"].to_numpy(),
        "label": ["(image)" if l < 0 else t.class_name(int(l)) for l in sc["label"]],
        "explainer": sc["explainer"].astype(str).to_numpy(),
        "metric": sc["metric"].astype(str).to_numpy(),
        "raw": sc["raw"].to_numpy(),
        "score": sc["score"].to_numpy(),
        "nan_reason": sc["nan_reason"].to_numpy() if "nan_reason" in sc else [None] * len(sc),
    })
    return SampleDetail(
        row=row, source=str(s["source"].iat[pos]),
        height=int(s["height"].iat[pos]), width=int(s["width"].iat[pos]),
        ground_truth=tuple(t.class_name(g) for g in t.gt_labels(pos)),
        boxes=tuple((t.class_name(b[0]), *b[1:]) for b in t.boxes(pos)),
        scores=scores,
    )


# ---- per-pair explainer figures ------------------------------------------------------------
_DETAIL_FORMATS = (("precision", "precision {:.3f}"), ("coverage", "coverage {:.3f}"),
                   ("anchor_size", "{:.0f} superpixel(s)"), ("completeness_error", "completeness error {:.2%}"))


def detail_text(t: RunTables, pos: int, label: int, explainer: str) -> str:
    """"precision 0.970 · coverage 0.125 · 3 superpixels" for an anchor, "completeness error
    0.41%" for Integrated Gradients; "" when the run stores nothing for that map. An empty
    anchor says what it means instead of "precision 1.000 · 0 superpixels" (issue 18): for a
    label the model does not predict, its absence holds whatever the pixels."""
    d = t.details().get((int(pos), int(label), explainer))
    if not d:
        return ""
    if d.get("anchor_size") == 0.0:
        return ("no anchor: the model does not predict this label, whatever the pixels" if not _predicted(t, pos, label)
                else "empty anchor: the model predicts this label whatever the pixels")
    parts = [fmt.format(d[k]).replace("(s)", "" if d[k] == 1 else "s")
             for k, fmt in _DETAIL_FORMATS if k in d and math.isfinite(d[k])]
    if d.get("found") == 0.0:
        parts.append("target precision not reached")
    return " · ".join(parts)


def _predicted(t: RunTables, pos: int, label: int) -> bool:
    a, b = int(t.starts[pos]), int(t.starts[pos + 1])
    hit = np.flatnonzero(t.lcol("label")[a:b] == label)
    return bool(hit.size) and TAGS[t.lcol("tag")[a + hit[0]]] in ("TP", "FP")


MISSING = "—"


def scores_pivot(t: RunTables, scores: pd.DataFrame, label: int) -> pd.DataFrame:
    """The detail view's scores for one label: explainers × metrics (run order), headed by
    the score names ("Deletion (1 − AUC)"; label-agnostic metrics say "whole image"), as text:
    "0.977" or, where the score is a mapping of the raw value, "0.977 (0.023)"; "—" where the
    metric has no value for that label; "n/a: <reason>" where the model's non-finite outputs
    left it without one."""
    sc = scores[(scores["label_index"].to_numpy() == label) | (scores["label_index"].to_numpy() < 0)]
    if not len(sc):
        return pd.DataFrame()
    infos = {m.name: m for m in metric_infos(t)}
    metrics = [m for m in dict.fromkeys([m.get("name") for m in t.metrics] + list(sc["metric"])) if m in set(sc["metric"])]
    explainers = [e for e in dict.fromkeys(list(t.explainers) + list(sc["explainer"])) if e in set(sc["explainer"])]
    why = sc["nan_reason"] if "nan_reason" in sc else [None] * len(sc)
    cells = {(e, m): (s, r, w) for e, m, s, r, w in zip(sc["explainer"], sc["metric"], sc["score"], sc["raw"], why)}

    def text(e, m):
        s, r, w = cells.get((e, m), (np.nan, np.nan, None))
        if not np.isfinite(s):
            return f"n/a: {w}" if isinstance(w, str) else MISSING
        info = infos.get(m)
        return f"{s:.3f} ({r:.3f})" if info is not None and info.mapped and np.isfinite(r) else f"{s:.3f}"

    def head(m):
        info = infos.get(m)
        return m if info is None else info.score_name + (" · whole image" if info.label_agnostic else "")

    return pd.DataFrame({head(m): [text(e, m) for e in explainers] for m in metrics},
                        index=pd.Index(explainers, name="explainer"))


def neighbours(order, pos: int) -> tuple[int | None, int | None]:
    """(previous, next) sample positions of ``pos`` in the display ``order`` (the filtered and
    sorted selection, across pages), None at either end or when ``pos`` is not in it."""
    seq = [int(p) for p in order]
    if int(pos) not in seq:
        return None, None
    k = seq.index(int(pos))
    return (seq[k - 1] if k > 0 else None), (seq[k + 1] if k + 1 < len(seq) else None)
