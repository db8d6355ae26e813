"""Relevance Rank Accuracy."""

from __future__ import annotations

import numpy as np

from . import register
from ._curves import pixel_order
from .base import Metric, finite_maps


@register
class RelevanceRankAccuracy(Metric):
    """Share of the K most relevant pixels that lie on the object, K = object size in pixels.

    Arras, Osman & Samek, "CLEVR-XAI", Information Fusion 2022 (relevance rank accuracy):
    |top-K(R) ∩ object| / K. Ties are broken by the same seeded random order as the
    perturbation metrics, so a flat map scores the chance level K / (H·W) on average, not
    whatever raster order favours. Raw ∈ [0, 1], higher is better. Ground-truth labels with a
    non-empty box or mask only; NaN elsewhere and for non-finite maps.
    """

    name = "relevance_rank_accuracy"
    display_name = "Relevance Rank Accuracy"
    category = "localization"
    higher_is_better = True
    value_range = (0.0, 1.0)
    needs = frozenset({"masks"})
    paper = "Arras et al. 2022, arXiv:2003.07258"

    def evaluate(self, ctx):
        out = np.full(len(ctx), np.nan)
        use = ctx.localisable() & finite_maps(ctx.saliency)
        if not use.any():
            return out
        idx = np.flatnonzero(use)
        order = pixel_order(ctx.saliency[idx], ctx.seed).numpy()
        masks = np.asarray(ctx.masks).reshape(len(ctx), -1)[idx]
        for row, i in enumerate(idx):
            k = int(masks[row].sum())
            if k > 0:
                out[i] = float(masks[row][order[row, :k]].mean())
        return out
