"""Pointing Game."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import register
from .base import Metric, finite_maps


def tolerance_px(tolerance: float, shape: tuple[int, int]) -> int:
    """``tolerance`` ≤ 0 means auto: 15 px at 224 px, scaled with the short side."""
    if tolerance > 0:
        return int(round(tolerance))
    return max(1, int(round(15 * min(shape) / 224)))


@register
class PointingGame(Metric):
    """1 if the saliency maximum lies on the object (within a tolerance disc), else 0.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016, §5.1:
    15 px tolerance at 224 px (``tolerance`` = 0: scaled with the short side, 4 px at 64 px).
    The object is the label's mask, or its filled boxes when the dataset has no mask.
    Ground-truth labels with a box or mask only; NaN elsewhere and for non-finite maps; a
    flat map points nowhere (0). Boxes are [x_min, y_min, x_max, y_max] with x the column —
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
            s = sal[i]
            if s.max() == s.min():
                out[i] = 0.0
                continue
            near = ndimage.binary_dilation(ctx.masks[i], structure=disc)
            out[i] = float(near[s == s.max()].any())
        return out
