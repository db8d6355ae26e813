"""Pointing Game."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import register
from .base import Metric, finite_maps

#: Values within this fraction of the map's largest magnitude of its maximum count as tied
#: maxima: float32 sums of the same terms in another order differ by a few ulp (~1e-7).
TIE_RTOL = 1e-6


def tolerance_px(tolerance: float, shape: tuple[int, int]) -> int:
    """``tolerance`` ≤ 0 means auto: 15 px at 224 px, scaled with the short side."""
    if tolerance > 0:
        return int(round(tolerance))
    return max(1, int(round(15 * min(shape) / 224)))


def tied_maxima(saliency: np.ndarray, rtol: float = TIE_RTOL) -> np.ndarray:
    """(H, W) bool: the pixels tied for the map's maximum, i.e. within
    ``rtol · max |s|`` of it. A flat map is tied everywhere."""
    top = saliency.max()
    return saliency >= top - rtol * np.abs(saliency).max()


@register
class PointingGame(Metric):
    """Expected hit over the tied maxima: the share of them within the tolerance of the object.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016, §5.1:
    a hit when the maximum lies within 15 px of the object at 224 px (``tolerance`` = 0:
    scaled with the short side, 4 px at 64 px). The paper assumes one maximum; maps made of
    regions (Anchors, XRAI, LIME, Occlusion) have many tied maxima, and counting a hit when
    *any* of them is near the object (as Quantus does, exact ties) rewards large flat
    regions, while taking the first one in raster order (``np.argmax``) depends on where the
    object happens to be. So the raw value is the hit expected when the pointer picks one of
    the tied maxima at random: |tied ∩ (object ⊕ disc)| / |tied|, in [0, 1] — 0 or 1 when the
    maximum is unique. Ties: values within ``TIE_RTOL`` (1e-6) · max |s| of the maximum.
    A flat map is tied everywhere and scores the chance level (the share of the image within
    the tolerance of the object). The object is the label's mask, or its filled boxes when
    the dataset has no mask. Ground-truth labels with a box or mask only; NaN elsewhere and
    for non-finite maps. Boxes are [x_min, y_min, x_max, y_max] with x the column —
    MindSpore swaps the axes; we test that we do not.
    """

    name = "pointing_game"
    display_name = "Pointing Game"
    category = "localization"
    higher_is_better = True
    value_range = (0.0, 1.0)
    needs = frozenset({"masks"})
    paper = "Zhang et al. 2016, arXiv:1608.00507"

    @dataclass(frozen=True)
    class Params:
        tolerance: float = 0.0

    def evaluate(self, ctx):
        out = np.full(len(ctx), np.nan)
        use = ctx.localisable() & finite_maps(ctx.saliency)
        if not use.any():
            return out
        sal = ctx.saliency.numpy()
        h, w = sal.shape[1:]
        r = tolerance_px(self.params.tolerance, (h, w))
        yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
        disc = (xx**2 + yy**2) <= r * r
        for i in np.flatnonzero(use):
            near = ndimage.binary_dilation(ctx.masks[i], structure=disc)
            out[i] = float(near[tied_maxima(sal[i])].mean())
        return out
