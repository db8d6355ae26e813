"""Sparseness (Gini index)."""

from __future__ import annotations

import numpy as np

from . import register
from .base import Metric, finite_maps


def gini(a: np.ndarray) -> np.ndarray:
    """Gini index of each row of |a|: (P, D) → (P,) in [0, 1 − 1/D]; all-zero rows give 0.

    G = Σᵢ (2i − D − 1) a₍ᵢ₎ / (D Σᵢ a₍ᵢ₎) with a₍₁₎ ≤ … ≤ a₍D₎ (Hurley & Rickard 2009, the
    form used by Chalasani et al.)."""
    a = np.sort(np.abs(np.asarray(a, dtype=np.float64)), axis=1)
    d = a.shape[1]
    coef = 2.0 * np.arange(1, d + 1) - d - 1
    total = a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = (a * coef).sum(axis=1) / (d * total)
    return np.where(total > 0, g, 0.0)


@register
class Sparseness(Metric):
    """Gini index of |map|: 0 when relevance is spread evenly, → 1 when it sits on one pixel.

    Chalasani, Chen, Chowdhury, Wu & Jha, "Concise Explanations of Neural Networks using
    Adversarial Training", ICML 2020. Raw ∈ [0, 1), higher is better (a concise map is
    easier to read; judge it together with faithfulness, as a single bright pixel is sparse
    too). An all-zero map scores 0; non-finite maps NaN. Needs no forward pass.
    """

    name = "sparseness"
    display_name = "Sparseness (Gini)"
    category = "complexity"
    higher_is_better = True
    value_range = (0.0, 1.0)
    paper = "Chalasani et al. 2020, arXiv:1810.06583"

    def evaluate(self, ctx):
        out = gini(ctx.saliency.numpy().reshape(len(ctx), -1))
        out[~finite_maps(ctx.saliency)] = np.nan
        return out
