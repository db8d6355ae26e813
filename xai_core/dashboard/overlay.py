"""Display of raw saliency maps: polarity, percentile clipping, colour scale, overlay.

Maps are stored raw (sign kept, method units). Normalisation happens only here, at display
time, and the scale can be shared: MindInsight min-max normalises every map on its own
(ANCHORS.md §1), which makes maps incomparable across labels and methods. The default here
is one scale per explainer over the maps on screen; "map" reproduces the per-map view and
"all" shares one scale across explainers (meaningful when they share units).

Clipping at the 99–99.5th percentile and a diverging colour map for signed maps follow the
PAIR saliency library's display defaults (ANCHORS.md §6). Vertex XAI's options are here too:
a clip *range* (attributions below the lower percentile are not highlighted, those above the
upper one saturate; Vertex's Integrated Gradients defaults are 62 / 99.9), its pink–green
colour map (positive green, negative pink) and the "outlines" display (below).
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
PINK_GREEN = "pink_green"  # Vertex XAI's map: positive attributions green, negative pink, 0 black
SEQUENTIAL_CMAPS = ("inferno", "viridis", "magma", "hot", "jet", "gray", PINK_GREEN)
DIVERGING_CMAPS = ("RdBu_r", "coolwarm", "bwr", "PiYG", "seismic", PINK_GREEN)
SCALES = {"explainer": "shared per explainer", "all": "shared across explainers", "map": "one per map"}
DISPLAYS = {"heatmap": "heat map", "outlines": "outlines"}
HEATMAP_CLIP = (0.0, 99.5)    # PAIR saliency's display default (ANCHORS.md §6)
OUTLINE_CLIP = (62.0, 99.9)   # Vertex XAI's defaults for Integrated Gradients
OUTLINE_MASS = 50.0           # % of the clipped map's mass the outlines enclose
_PINK, _GREEN = (255, 20, 147), (0, 230, 118)


@dataclass(frozen=True)
class OverlayStyle:
    """How maps are drawn. ``opacity`` is the map's weight in the blend with the image;
    ``clip_percentile`` in (0, 100]: values above it saturate the colour map (shared per
    ``scale``); ``clip_low`` in [0, clip_percentile]: values of a map below its own
    ``clip_low``-th percentile of |s| are not highlighted (the image shows through).
    ``display`` "outlines" draws, instead of a heat map, the outline of the smallest region
    holding ``outline_mass`` % of the clipped map's mass."""

    overlay: bool = True
    opacity: float = 0.5
    polarity: str = "absolute"
    cmap: str = "inferno"
    diverging_cmap: str = "RdBu_r"
    clip_percentile: float = HEATMAP_CLIP[1]
    scale: str = "explainer"
    clip_low: float = HEATMAP_CLIP[0]
    display: str = "heatmap"
    outline_mass: float = OUTLINE_MASS

    def __post_init__(self):
        if self.polarity not in POLARITIES:
            raise XaiError(f"polarity {self.polarity!r} unknown; expected one of {POLARITIES}")
        if self.scale not in SCALES:
            raise XaiError(f"colour scale {self.scale!r} unknown; expected one of {tuple(SCALES)}")
        if not 0.0 <= self.opacity <= 1.0:
            raise XaiError(f"opacity is {self.opacity}; expected 0 ≤ opacity ≤ 1")
        if not 0.0 < self.clip_percentile <= 100.0:
            raise XaiError(f"clipping percentile is {self.clip_percentile}; expected 0 < p ≤ 100")
        if not 0.0 <= self.clip_low <= self.clip_percentile:
            raise XaiError(f"clip range ({self.clip_low}, {self.clip_percentile}) is invalid; expected 0 ≤ lower ≤ upper")
        if self.display not in DISPLAYS:
            raise XaiError(f"display {self.display!r} unknown; expected one of {tuple(DISPLAYS)}")
        if not 0.0 < self.outline_mass <= 100.0:
            raise XaiError(f"outline mass is {self.outline_mass} %; expected 0 < mass ≤ 100")

    @property
    def signed(self) -> bool:
        return self.polarity == "signed"

    @property
    def colormap(self) -> str:
        """The lookup-table name: pink–green on one polarity is black → green (pink for
        "negative"), so a positive attribution is green whatever the polarity shown."""
        name = self.diverging_cmap if self.signed else self.cmap
        if name == PINK_GREEN and not self.signed:
            return f"{PINK_GREEN}:{'-' if self.polarity == 'negative' else '+'}"
        return name

    @property
    def outlines(self) -> bool:
        return self.display == "outlines"


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


def _ramp(*stops: tuple[int, int, int]) -> np.ndarray:
    """(256, 3) uint8 piecewise-linear ramp through equally spaced RGB stops."""
    at = np.linspace(0.0, 1.0, len(stops))
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, at, [c[i] for c in stops]) for i in range(3)], 1).round().astype(np.uint8)


@lru_cache(maxsize=32)
def colormap_lut(name: str) -> np.ndarray:
    if name.startswith(PINK_GREEN):  # not in matplotlib: Vertex XAI's pink-green
        variant = name[len(PINK_GREEN):]
        black = (0, 0, 0)
        luts = {"": (_PINK, black, _GREEN), ":+": (black, _GREEN), ":-": (black, _PINK)}
        if variant in luts:
            return _ramp(*luts[variant])
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


def floor_value(saliency: np.ndarray, style: OverlayStyle) -> float:
    """The map's ``clip_low``-th percentile of the shown magnitudes: below it a pixel is not
    highlighted. 0 when ``clip_low`` is 0 (nothing excluded). Per map, as Vertex XAI does: it
    hides a map's own noise, whereas the upper clip sets a (possibly shared) colour scale."""
    if style.clip_low <= 0.0:
        return 0.0
    return float(np.percentile(np.abs(polarised(saliency, style.polarity)), style.clip_low))


def render(image: np.ndarray | None, saliency: np.ndarray, vmax: float, style: OverlayStyle,
           *, upscale: int = 1) -> np.ndarray:
    """(H·u, W·u, 3) uint8: the coloured map, blended over ``image`` ((H, W, 3) uint8) with
    weight ``style.opacity`` when ``style.overlay`` (pixels below the map's lower clip keep the
    image); ``upscale`` repeats pixels so small images stay sharp in the browser. With
    ``style.outlines`` the image carries the outlines of the map's top regions instead."""
    shape = image.shape[:2] if image is not None else saliency.shape
    fitted = _fit(saliency, shape)
    if style.outlines:
        return draw_outlines(image, fitted, vmax, style, upscale=upscale)
    rgb = colourise(normalised(fitted, vmax, style), style.colormap).astype(np.float32)
    low = floor_value(fitted, style)
    if style.overlay and image is not None:
        a = np.full(shape + (1,), style.opacity, np.float32)
        if low > 0:
            a[np.abs(polarised(fitted, style.polarity)) < low] = 0.0
        rgb = (1.0 - a) * image.astype(np.float32) + a * rgb
    elif low > 0:  # no image to show through: excluded pixels take the colour of 0
        rgb[np.abs(polarised(fitted, style.polarity)) < low] = colourise(np.float32(0.5 if style.signed else 0.0),
                                                                          style.colormap)
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


# ---- outlines (Vertex XAI's OUTLINES display) --------------------------------------------
# Instead of colouring every pixel, draw on the image the contour of the smallest region that
# holds a given share of the map's mass. The map is first polarised and clipped (values above the upper clip saturate, values below the
# map's own lower-percentile floor drop to 0: Vertex's ``clip_percent_upperbound`` /
# ``clip_percent_lowerbound``, 99.9 / 62 for Integrated Gradients). The region is then the set of
# the largest values whose sum reaches ``outline_mass`` % of the clipped total (the "top x % of
# the mass", not of the pixels: a peaked map gets a small region, a flat one a large region).
# In signed mode the positive and the negative parts are outlined separately, in the two end
# colours of the diverging map (pink–green: + green, − pink).
def mass_threshold(values: np.ndarray, mass: float) -> float:
    """The smallest value ``t`` such that the values ≥ ``t`` hold at least ``mass`` % of the
    sum of ``values`` (≥ 0). ``inf`` when the sum is 0 (no region)."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())[::-1]
    if not v.size:
        return float("inf")
    c = np.cumsum(v)
    if c[-1] <= 0:
        return float("inf")
    k = int(np.searchsorted(c, mass / 100.0 * c[-1] * (1.0 - 1e-12)))
    return float(v[min(k, v.size - 1)])


def _parts(saliency: np.ndarray, style: OverlayStyle) -> list[tuple[np.ndarray, float]]:
    """(part ≥ 0, colour-map position) pairs: one for a polarity, two (+ and −) for signed."""
    if style.signed:
        s = polarised(saliency, "signed")
        return [(np.maximum(s, 0.0), 1.0), (np.maximum(-s, 0.0), 0.0)]
    return [(polarised(saliency, style.polarity), 1.0)]


def clipped_part(part: np.ndarray, floor: float, vmax: float) -> np.ndarray:
    """``part`` with values above ``vmax`` saturated and values below ``floor`` set to 0."""
    q = np.minimum(part, vmax) if vmax > 0 else part.copy()
    q[part < floor] = 0.0
    return q


def region_masks(saliency: np.ndarray, vmax: float, style: OverlayStyle, *,
                 upscale: int = 1) -> list[tuple[np.ndarray, float]]:
    """[(region (H·u, W·u) bool, colour-map position)] of each part of the map. The clipped part
    is smoothed (σ = 1.5 % of the short side) before the mass threshold, and specks under 0.5 %
    of the image dropped, so a pixel-noisy gradient map gets regions, not confetti (Vertex and
    PAIR smooth too). The region's indicator is upsampled bilinearly (kept where ≥ 0.5), so
    contours are smooth rather than staircases of the stored pixel grid."""
    from scipy import ndimage

    floor = floor_value(saliency, style)
    h, w = saliency.shape
    out = []
    for part, where in _parts(saliency, style):
        q = ndimage.gaussian_filter(clipped_part(part, floor, vmax).astype(np.float32), sigma=max(0.5, 0.015 * min(h, w)))
        region = (q >= mass_threshold(q, style.outline_mass)) & (q > 0)
        lab, n = ndimage.label(region)
        if n > 1:
            sizes = np.bincount(lab.ravel())
            region = (sizes >= max(2.0, 0.005 * h * w))[lab] & region
        if upscale > 1:
            up = Image.fromarray(region.astype(np.float32)).resize((w * upscale, h * upscale), Image.BILINEAR)
            region = np.asarray(up, dtype=np.float32) >= 0.5
        out.append((region, where))
    return out


def boundary(region: np.ndarray, width: int = 1) -> np.ndarray:
    """The ``width``-pixel inner border of ``region`` (the image edge counts as outside)."""
    from scipy import ndimage

    if not region.any():
        return region
    return region & ~ndimage.binary_erosion(region, iterations=width, border_value=0)


def line_width(height: int, width: int, upscale: int) -> int:
    """About 1 % of the displayed side, at least 1 pixel."""
    return max(1, int(round(min(height, width) * upscale / 100.0)))


def draw_outlines(image: np.ndarray | None, saliency: np.ndarray, vmax: float, style: OverlayStyle,
                  *, upscale: int = 1) -> np.ndarray:
    """(H·u, W·u, 3) uint8: ``image`` (black when None) with the outlines of ``saliency``'s
    regions, each in its end colour of ``style.colormap``."""
    h, w = saliency.shape
    base = np.zeros((h, w, 3), np.uint8) if image is None else np.asarray(image, np.uint8)
    out = base.repeat(upscale, axis=0).repeat(upscale, axis=1) if upscale > 1 else base.copy()
    lw = line_width(h, w, upscale)
    for region, where in region_masks(saliency, vmax, style, upscale=upscale):
        out[boundary(region, lw)] = colourise(np.float32(where), style.colormap)
    return out
