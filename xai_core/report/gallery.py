"""The report's gallery: per explainer, the best and the worst explained (image, label) rows
by one metric's [0, 1] score, each drawn as the image and its map (PNG bytes).

Rows are those the assessment counts for that metric (``RowFilter``: localisation metrics on
TP labels by default). Pictures are at most ``MAX_SIDE`` pixels a side, so a report of a run of
large images stays small; small images are repeated up to about ``TARGET`` pixels so boxes and
their names stay readable.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from ..dashboard import assessment as A
from ..dashboard.overlay import OverlayStyle, scale_values
from ..dashboard.render import MapStore, detail_pictures
from ..dashboard.tables import RunTables
from ..errors import XaiError
from ..labels import TAGS

TARGET = 128
MAX_SIDE = 192


@dataclass(frozen=True)
class Tile:
    sample_id: str
    label: str
    tag: str
    score: float
    picture: bytes      # the image with its boxes
    overlay: bytes      # the map over it


@dataclass(frozen=True)
class ExplainerGallery:
    explainer: str
    best: tuple[Tile, ...]
    worst: tuple[Tile, ...]
    errors: tuple[str, ...] = ()


def _small_png(png: bytes) -> bytes:
    """``png`` re-encoded at full compression, shrunk to ``MAX_SIDE`` when larger."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    if max(im.size) > MAX_SIDE:
        f = MAX_SIDE / max(im.size)
        im = im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), Image.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def pick_rows(t: RunTables, explainer: str, metric: A.MetricInfo, k: int,
              rows_filter: A.RowFilter) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) label rows of ``explainer`` by ``metric``'s score among those the filter
    keeps: up to ``k`` each, best first / worst first, ties in sample order; the two never
    overlap (a run with fewer than 2k results splits them)."""
    values = np.asarray(t.pair_values(explainer, metric.name), dtype=np.float64)
    allowed = [TAGS.index(tag) for tag in rows_filter.allowed(metric.category)]
    ok = np.isfinite(values) & np.isin(t.lcol("tag"), allowed)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(-values[idx], kind="stable")]
    n_best = min(k, (len(order) + 1) // 2)
    n_worst = min(k, len(order) - n_best)
    return order[:n_best], order[::-1][:n_worst]


def _tiles(t: RunTables, store: MapStore, explainer: str, lrows: np.ndarray, values: np.ndarray,
           style: OverlayStyle, vmax: float, errors: list) -> tuple[Tile, ...]:
    out = []
    for lr in lrows:
        pos = int(t.labels["pos"].iat[lr])
        label = int(t.lcol("label")[lr])
        sid = str(t.scol("sample_id")[pos])
        try:
            image = store.image(int(t.scol("part")[pos]), int(t.scol("offset")[pos]))
            m = store.saliency(explainer, int(t.lcol("part")[lr]), int(t.lcol("map_offset")[lr]))
        except XaiError as e:
            errors.append(f"{sid} / {t.class_name(label)} / {explainer}: {e}")
            continue
        boxes = [(t.class_name(b[0]), *b[1:]) for b in t.boxes(pos)]
        picture, tiles = detail_pictures(image, {"m": (m, vmax)}, style, boxes, highlight=t.class_name(label),
                                         target_px=TARGET)
        out.append(Tile(sid, t.class_name(label), str(t.labels["tag"].iat[lr]), float(values[lr]),
                        _small_png(picture), _small_png(tiles["m"])))
    return tuple(out)


def build_gallery(t: RunTables, store: MapStore, metric: A.MetricInfo | None, k: int,
                  rows_filter: A.RowFilter, style: OverlayStyle = OverlayStyle()) -> list[ExplainerGallery]:
    """One :class:`ExplainerGallery` per explainer with scores on ``metric``. Each explainer's
    tiles share one colour scale (the clip percentile over its best and worst maps)."""
    if metric is None or k <= 0:
        return []
    out = []
    for e in t.explainers:
        if (e, metric.name) not in t.pair_slices:
            continue
        best, worst = pick_rows(t, e, metric, k, rows_filter)
        values = np.asarray(t.pair_values(e, metric.name), dtype=np.float64)
        errors: list[str] = []
        maps = {}
        for lr in np.r_[best, worst]:
            try:
                maps[int(lr)] = (e, store.saliency(e, int(t.lcol("part")[lr]), int(t.lcol("map_offset")[lr])))
            except XaiError:
                pass  # reported by _tiles
        scale = scale_values(maps, replace(style, scale="all"))
        vmax = next(iter(scale.values()), 0.0)
        out.append(ExplainerGallery(e, _tiles(t, store, e, best, values, style, vmax, errors),
                                    _tiles(t, store, e, worst, values, style, vmax, errors), tuple(errors)))
    return out
