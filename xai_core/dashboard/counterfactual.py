"""Counterfactual-page logic: which images have a hierarchical-occlusion result, and the
layer-by-layer strip of one (image, label).

The runner's search (:mod:`xai_core.counterfactual`, MindSpore's HOC) keeps a label by pasting
a few sharp windows back into a blurred copy of the image; each layer halves the window side
and searches inside the windows of the layer above. The ``counterfactuals`` table stores per
layer the windows and p(label) of that composite. The strip rebuilds each composite from the
stored image with the runner's own blur (its functions, imported lazily: torch is loaded only
when a strip is drawn) so what is shown is what the model saw.

Filter semantics follow the saliency page: an (image, label) row passes when its label and
tag are selected and, with ``only_with_result``, it has a counterfactual; an image is listed
when any of its rows passes. Everything is vectorised over the label rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from ..errors import XaiError
from ..labels import TAGS
from .overlay import thumbnail, upscale_factor
from .tables import RunTables

ENABLE_HINT = ("Counterfactuals are off for this run. Enable them in the run configuration with "
               "`counterfactual: {enabled: true}` (optionally `layers: 3`) and run again: "
               "`xai-core run --config CONFIG.yaml --out DIR`.")
BOX_COLOUR = (255, 221, 0)


@dataclass(frozen=True)
class CounterfactualFilter:
    labels: tuple[int, ...] = ()          # () means every label
    tags: tuple[str, ...] = TAGS
    only_with_result: bool = True


def enabled(t: RunTables) -> bool:
    """Whether the run was configured to search counterfactuals (manifest ``config``)."""
    cfg = (t.manifest.get("config") or {}).get("counterfactual") or {}
    return bool(cfg.get("enabled")) if isinstance(cfg, dict) else False


def availability(t: RunTables) -> str | None:
    """None when the run has counterfactuals to show, else why not (for an info box)."""
    if len(t.counterfactuals()):
        return None
    if not enabled(t):
        return ENABLE_HINT
    return ("This run searched counterfactuals but found none: only labels with p ≥ the label threshold are "
            "searched, and a label the blurred image alone keeps needs no window.")


def result_rows(t: RunTables) -> np.ndarray:
    """(n_label_rows,) bool: the (image, label) has at least one counterfactual layer."""
    out = np.zeros(len(t.labels), bool)
    out[t.counterfactuals()["lrow"].to_numpy()] = True
    return out


def result_counts(t: RunTables) -> np.ndarray:
    """(n_samples,) int64: how many labels of each image have a counterfactual."""
    return np.bincount(t.labels["pos"].to_numpy()[result_rows(t)], minlength=t.n_samples)


def select_images(t: RunTables, flt: CounterfactualFilter) -> np.ndarray:
    """Sample positions of the listed images, in sample order."""
    m = np.isin(t.lcol("tag"), np.asarray([TAGS.index(x) for x in flt.tags if x in TAGS], dtype=np.int8))
    if flt.labels:
        m &= np.isin(t.lcol("label"), np.asarray(flt.labels, dtype=np.int32))
    if flt.only_with_result:
        m &= result_rows(t)
    per_image = np.zeros(t.n_samples, bool)
    per_image[t.labels["pos"].to_numpy()[m]] = True
    return np.flatnonzero(per_image)


def labels_with_result(t: RunTables, pos: int) -> list[int]:
    """Labels of image ``pos`` that have a counterfactual, most probable first."""
    if not 0 <= pos < t.n_samples:
        raise XaiError(f"image position {pos} is out of range; the run has {t.n_samples} images")
    a, b = int(t.starts[pos]), int(t.starts[pos + 1])
    has = result_rows(t)[a:b]
    return [int(l) for l in t.lcol("label")[a:b][has]]


@dataclass(frozen=True)
class Layer:
    layer: int                          # 0 = largest windows
    side: int                           # window side in pixels
    prob: float                         # p(label) of the composite
    boxes: tuple[tuple[float, float, float, float], ...]
    picture: np.ndarray                 # (H·u, W·u, 3) uint8 composite with the windows drawn

    @property
    def caption(self) -> str:
        n = len(self.boxes)
        return f"layer {self.layer + 1} · {n} window{'s' * (n != 1)} of {self.side} px · p = {self.prob:.3f}"


@dataclass(frozen=True)
class Strip:
    sample_id: str
    label: int
    name: str
    prob: float                         # p(label) of the original image
    original: np.ndarray                # (H·u, W·u, 3) uint8
    layers: tuple[Layer, ...]

    def frame(self) -> pd.DataFrame:
        """One row per layer for the probability chart/table (layer 0 = the original image)."""
        return pd.DataFrame({
            "layer": [0] + [l.layer + 1 for l in self.layers],
            "window side (px)": pd.array([None] + [l.side for l in self.layers], dtype="Int64"),
            "windows": pd.array([None] + [len(l.boxes) for l in self.layers], dtype="Int64"),
            "probability": [self.prob] + [l.prob for l in self.layers],
        })


def frame_text(frame: pd.DataFrame) -> pd.DataFrame:
    """:meth:`Strip.frame` as text for the table: "—" where a column does not apply (the
    original image has no windows), not "None"."""
    out = pd.DataFrame(index=frame.index)
    for c in frame.columns:
        v = frame[c]
        out[c] = ["—" if pd.isna(x) else (f"{x:.3f}" if isinstance(x, float) else str(x)) for x in v]
    return out


def composites(image: np.ndarray, layer_boxes: list) -> np.ndarray:
    """(L, H, W, 3) uint8: ``image`` (H, W, 3) uint8 blurred as the runner blurs it, with the
    windows of each layer pasted back sharp (``layer_boxes``: L lists of [x0, y0, x1, y1])."""
    import torch

    from ..blur import gaussian_blur
    from ..counterfactual import default_blur_sigma, windows_mask

    if image.ndim != 3 or image.shape[2] != 3:
        raise XaiError(f"image of shape {image.shape}; expected (H, W, 3) uint8")
    h, w = image.shape[:2]
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    blurred = gaussian_blur(x, default_blur_sigma(h, w))
    out = []
    for boxes in layer_boxes:
        m = windows_mask((h, w), [tuple(int(round(float(v))) for v in b[:4]) for b in boxes])
        out.append(torch.where(m, x[0], blurred[0]))
    if not out:
        return np.zeros((0, h, w, 3), np.uint8)
    y = torch.stack(out).permute(0, 2, 3, 1).mul(255.0).round().clamp(0, 255).to(torch.uint8)
    return y.numpy()


def draw_boxes(picture: np.ndarray, boxes, scale: int = 1, colour=BOX_COLOUR) -> np.ndarray:
    """``picture`` (H, W, 3) uint8 with rectangle outlines at ``boxes`` × ``scale`` (max exclusive)."""
    im = Image.fromarray(picture)
    d = ImageDraw.Draw(im)
    width = max(1, scale // 2)
    for x0, y0, x1, y1 in boxes:
        d.rectangle([x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=colour, width=width)
    return np.asarray(im)


def strip(t: RunTables, image: np.ndarray, pos: int, label: int, *, target_px: int = 160) -> Strip:
    """The layers of the counterfactual of (image ``pos``, ``label``); ``image`` is its stored
    picture (``MapStore.image``). Raises XaiError when that pair has no counterfactual."""
    cf = t.counterfactuals()
    rows = cf[(cf["pos"].to_numpy() == pos) & (cf["label"].to_numpy() == label)]
    if not len(rows):
        have = [t.class_name(l) for l in labels_with_result(t, pos)] if 0 <= pos < t.n_samples else []
        raise XaiError(f"no counterfactual for label {t.class_name(label)!r} of image {pos}; "
                       f"labels with one: {have or 'none'}")
    boxes = [[tuple(float(v) for v in b) for b in bs] for bs in rows["boxes"]]
    u = upscale_factor(*image.shape[:2], target=target_px)
    pictures = composites(image, boxes)
    layers = tuple(Layer(int(r.layer), int(r.side), float(r.prob), tuple(bs), draw_boxes(thumbnail(p, upscale=u), bs, u))
                   for r, bs, p in zip(rows.itertuples(), boxes, pictures))
    lrow = int(rows["lrow"].iat[0])
    return Strip(str(t.scol("sample_id")[pos]), int(label), t.class_name(int(label)), float(t.lcol("prob")[lrow]),
                 thumbnail(np.asarray(image), upscale=u), layers)
