"""Complexity (entropy of the relevance distribution)."""

from __future__ import annotations

import numpy as np

from . import register
from .base import Metric, finite_maps


def normalised_entropy(a: np.ndarray) -> np.ndarray:
    """Shannon entropy of p = |a| / Σ|a| per row, divided by ln D: (P, D) → (P,) in [0, 1].
    All-zero rows count as uniform (1)."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    d = a.shape[1]
    total = a.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = a / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    h = np.maximum(np.where(total[:, 0] > 0, h, np.log(d)), 0.0)  # −0.0 for one-hot rows
    return h / np.log(d) if d > 1 else np.zeros(a.shape[0])


@register
class Complexity(Metric):
    """Entropy of the fractional contributions |aᵢ| / Σ|a|, normalised by ln(H·W).

    Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based Model Explanations",
    IJCAI 2020 (complexity = entropy of the fractional contribution distribution).
    Divided by its maximum ln(H·W) so that values compare across image sizes: raw ∈ [0, 1],
    0 = all relevance on one pixel, 1 = spread uniformly (or an all-zero map). LOWER is
    better. Score: 1 − x. Non-finite maps NaN. Needs no forward pass.
    """

    name = "complexity"
    display_name = "Complexity (entropy)"
    category = "complexity"
    higher_is_better = False
    value_range = (0.0, 1.0)
    paper = "Bhatt et al. 2020, arXiv:2005.00631"

    def evaluate(self, ctx):
        out = normalised_entropy(ctx.saliency.numpy().reshape(len(ctx), -1))
        out[~finite_maps(ctx.saliency)] = np.nan
        return out
