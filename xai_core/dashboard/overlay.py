"""Display of raw saliency maps: polarity, percentile clipping, colour scale, overlay.

Maps are stored raw (sign kept, method units). Normalisation happens only here, at display
time, and the scale can be shared: MindInsight min-max normalises every map on its own
(ANCHORS.md §1), which makes maps incomparable across labels and methods. The default here
is one scale per explainer over the maps on screen; "map" reproduces the per-map view and
"all" shares one scale across explainers (meaningful when they share units).

Clipping at the 99–99.5th percentile and a diverging colour map for signed maps follow the
PAIR saliency library's display defaults (ANCHORS.md §6).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from ..errors import XaiError

POLARITIES = ("absolute", "positive", "negative", "signed")
SEQUENTIAL_CMAPS = ("inferno", "viridis", "magma", "hot", "jet", "gray")
DIVERGING_CMAPS = ("RdBu_r", "coolwarm", "bwr", "PiYG", "seismic")
SCALES = {"explainer": "shared per explainer", "all": "shared across explainers", "map": "one per map"}


@dataclass(frozen=True)
class OverlayStyle:
    """How maps are drawn. ``opacity`` is the map's weight in the blend with the image;
    ``clip_percentile`` in (0, 100]: values above it saturate the colour map."""

    overlay: bool = True
    opacity: float = 0.5
    polarity: str = "absolute"
    cmap: str = "inferno"
    diverging_cmap: str = "RdBu_r"
    clip_percentile: float = 99.5
    scale: str = "explainer"

    def __post_init__(self):
        if self.polarity not in POLARITIES:
            raise XaiError(f"polarity {self.polarity!r} unknown; expected one of {POLARITIES}")
        if self.scale not in SCALES:
            raise XaiError(f"colour scale {self.scale!r} unknown; expected one of {tuple(SCALES)}")
        if not 0.0 <= self.opacity <= 1.0:
            raise XaiError(f"opacity is {self.opacity}; expected 0 ≤ opacity ≤ 1")
        if not 0.0 < self.clip_percentile <= 100.0:
            raise XaiError(f"clipping percentile is {self.clip_percentile}; expected 0 < p ≤ 100")

    @property
    def signed(self) -> bool:
        return self.polarity == "signed"

    @property
    def colormap(self) -> str:
        return self.diverging_cmap if self.signed else self.cmap


def polarised(saliency: np.ndarray, polarity: str) -> np.ndarray:
    """(H, W) float32: the part of the raw map the polarity shows (signed keeps the sign)."""
    s = np.nan_to_num(np.asarray(saliency, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if polarity == "positive":
        return np.maximum(s, 0.0)
    if polarity == "negative":
        return np.maximum(-s, 0.0)
    if polarity == "absolute":
        return np.abs(s)
    return s


def clip_value(maps: Iterable[np.ndarray], style: OverlayStyle) -> float:
    """The value that maps to the top of the colour map: the ``clip_percentile`` of the
    magnitudes of all ``maps`` together (falls back to the max when that percentile is 0,
    as for a sparse map). 0 when every map is flat zero."""
    vals = [np.abs(polarised(m, style.polarity)).ravel() for m in maps]
    if not vals:
        return 0.0
    v = np.concatenate(vals)
    if not v.size:
        return 0.0
    c = float(np.percentile(v, style.clip_percentile))
    return c if c > 0 else float(v.max())


def scale_values(maps: Mapping[object, tuple[str, np.ndarray]], style: OverlayStyle) -> dict:
    """{key: clip value} for maps given as {key: (explainer, map)}, per ``style.scale``."""
    if style.scale == "map":
        return {k: clip_value([m], style) for k, (_, m) in maps.items()}
    if style.scale == "all":
        c = clip_value([m for _, m in maps.values()], style)
        return {k: c for k in maps}
    per = {}
    for e in {e for e, _ in maps.values()}:
        per[e] = clip_value([m for ee, m in maps.values() if ee == e], style)
    return {k: per[e] for k, (e, _) in maps.items()}


def normalised(saliency: np.ndarray, vmax: float, style: OverlayStyle) -> np.ndarray:
    """(H, W) float32 in [0, 1]: position on the colour map (signed: 0.5 is zero)."""
    p = polarised(saliency, style.polarity)
    if vmax <= 0:
        x = np.zeros_like(p)
    else:
        x = p / np.float32(vmax)
    if style.signed:
        return (np.clip(x, -1.0, 1.0) + 1.0) * 0.5
    return np.clip(x, 0.0, 1.0)


@lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise XaiError(f"colour map {name!r} unknown to matplotlib; try one of {SEQUENTIAL_CMAPS + DIVERGING_CMAPS}") from None
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).round().astype(np.uint8)


def colourise(x: np.ndarray, cmap: str) -> np.ndarray:
    """(H, W) in [0, 1] → (H, W, 3) uint8 through a 256-entry lookup table."""
    return colormap_lut(cmap)[np.rint(np.asarray(x) * 255.0).astype(np.uint8)]


def _fit(saliency: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if saliency.shape == shape:
        return saliency
    img = Image.fromarray(np.ascontiguousarray(saliency, dtype=np.float32))
    return np.asarray(img.resize((shape[1], shape[0]), Image.BILINEAR), dtype=np.float32)


def render(image: np.ndarray | None, saliency: np.ndarray, vmax: float, style: OverlayStyle,
           *, upscale: int = 1) -> np.ndarray:
    """(H·u, W·u, 3) uint8: the coloured map, blended over ``image`` ((H, W, 3) uint8) with
    weight ``style.opacity`` when ``style.overlay``; ``upscale`` repeats pixels so small
    images stay sharp in the browser."""
    shape = image.shape[:2] if image is not None else saliency.shape
    rgb = colourise(normalised(_fit(saliency, shape), vmax, style), style.colormap).astype(np.float32)
    if style.overlay and image is not None:
        a = np.float32(style.opacity)
        rgb = (1.0 - a) * image.astype(np.float32) + a * rgb
    out = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    if upscale > 1:
        out = out.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return out


def upscale_factor(height: int, width: int, target: int = 128) -> int:
    """Integer pixel repetition that brings the short side to about ``target`` pixels."""
    side = max(1, min(height, width))
    return max(1, int(np.ceil(target / side))) if side < target else 1


def thumbnail(image: np.ndarray, *, upscale: int = 1) -> np.ndarray:
    return image.repeat(upscale, axis=0).repeat(upscale, axis=1) if upscale > 1 else image


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# ---- colour legend ---------------------------------------------------------------------------
POLARITY_TEXT = {
    "absolute": "|s|: how strongly a pixel counts, whatever its sign",
    "positive": "max(s, 0): evidence for the label only",
    "negative": "max(−s, 0): evidence against the label only",
    "signed": "s with its sign: the middle colour is 0, the right end (+) raises the label's score, "
              "the left end (−) lowers it",
}


@dataclass(frozen=True)
class Legend:
    """The colour bar of one explainer column: ``low``/``high`` are the values at its ends
    (None when every map has its own scale), ``text`` says what a colour means."""

    bar: bytes
    low: float | None
    high: float | None
    text: str

    @property
    def ends(self) -> str:
        if self.high is None:
            return "0 … each map's max" if self.low == 0.0 else "−max … 0 … +max of each map"
        return f"{self.low:.3g} … {self.high:.3g}"


@lru_cache(maxsize=64)
def colour_bar(cmap: str, width: int = 160, height: int = 10) -> bytes:
    """PNG of the colour map from its low (left) to its high (right) end."""
    row = colourise(np.linspace(0.0, 1.0, width, dtype=np.float32), cmap)
    return png_bytes(np.ascontiguousarray(np.broadcast_to(row[None], (height, width, 3))))


def legend(style: OverlayStyle, clip_values: Iterable[float], *, signed_maps: bool = True) -> Legend:
    """The legend of maps drawn with ``style`` and these clip values (one per map of the
    column). ``signed_maps`` False (the explainer's maps are ≥ 0) is said in signed mode."""
    vals = sorted({float(v) for v in clip_values})
    shared = style.scale != "map" and len(vals) == 1
    high = vals[0] if shared else None
    if shared:
        low = -high if style.signed else 0.0
    else:
        low = None if style.signed else 0.0
    text = POLARITY_TEXT[style.polarity]
    if style.signed and not signed_maps:
        text += "; this explainer's maps are never negative"
    if not shared:
        text += "; each map has its own scale"
    text += f"; values beyond the {style.clip_percentile:g}th percentile of |s| saturate"
    return Legend(colour_bar(style.colormap), low, high, text)
