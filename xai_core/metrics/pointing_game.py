"""Pointing Game."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import register
from .base import Metric


def tolerance_px(tolerance: float, shape: tuple[int, int]) -> int:
    """``tolerance`` ≤ 0 means auto: 15 px at 224 px, scaled with the short side."""
    if tolerance > 0:
        return int(round(tolerance))
    return max(1, int(round(15 * min(shape) / 224)))


@register
class PointingGame(Metric):
    """1 if the saliency maximum lies on the object (within a tolerance disc), else 0.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016, §5.1:
    15 px tolerance at 224 px (scaled here with the image size). Ground-truth labels with a
    box or mask only; NaN elsewhere. Boxes are [x_min, y_min, x_max, y_max] with x the
    column — MindSpore swaps the axes; we test that we do not.
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
        if ctx.masks is None:
            return out
        sal = ctx.saliency.numpy()
        h, w = sal.shape[1:]
        r = tolerance_px(self.params.tolerance, (h, w))
        yy, xx = np.mgrid[-r: r + 1, -r: r + 1]
        disc = (xx**2 + yy**2) <= r * r
        for i in range(len(ctx)):
            if not (ctx.has_mask[i] and ctx.is_ground_truth[i]):
                continue
            s = sal[i]
            if not np.isfinite(s).all() or s.max() == s.min():
                out[i] = 0.0  # a flat map points nowhere
                continue
            near = ndimage.binary_dilation(ctx.masks[i], structure=disc)
            peaks = s == s.max()
            out[i] = float(near[peaks].any())
        return out
