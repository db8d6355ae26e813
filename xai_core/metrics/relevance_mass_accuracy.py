"""Relevance Mass Accuracy."""

from __future__ import annotations

import numpy as np

from . import register
from .base import Metric, finite_maps


@register
class RelevanceMassAccuracy(Metric):
    """Share of the positive relevance that falls inside the object: Σ_{object} R⁺ / Σ R⁺.

    Arras, Osman & Samek, "CLEVR-XAI: A benchmark dataset for the ground truth evaluation of
    neural network explanations", Information Fusion 2022 (relevance mass accuracy). Only the
    positive part R⁺ = max(R, 0) counts: negative relevance is evidence *against* the class.
    Raw ∈ [0, 1], higher is better. Ground-truth labels with a box or mask only; NaN
    elsewhere, for non-finite maps, and for maps without any positive value.
    """

    name = "relevance_mass_accuracy"
    display_name = "Relevance Mass Accuracy"
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
        pos = np.clip(ctx.saliency.numpy().reshape(len(ctx), -1)[use].astype(np.float64), 0.0, None)
        masks = np.asarray(ctx.masks).reshape(len(ctx), -1)[use]
        total = pos.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = (pos * masks).sum(axis=1) / total
        vals[total <= 0] = np.nan
        out[use] = vals
        return out
