"""Deletion AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._curves import clean_probs, normalised_auc, perturbation_curve, pixel_order, reference_images
from .base import Metric, finite_maps


@register
class DeletionAUC(Metric):
    """Area under the class-probability curve as the most salient pixels are deleted first.

    Petsiuk, Das & Saenko, "RISE", BMVC 2018, §4.1. Step k of ``steps`` replaces the top
    round(k/steps · H·W) pixels by ``fill`` (``replace="constant"``, default black) or by a
    blurred copy of the image (``replace="blur"``). Raw value: normalised trapezoid AUC of
    p(target) over the deleted fraction ∈ [0, 1]; a faithful map makes p fall fast, so LOWER
    is better (MindSpore reports 1 − AUC of p₀ − p_k, which inverts the meaning; we do not).
    Score: 1 − AUC. Forward passes: P × steps (+ P when ``ctx.probs`` is not given).
    """

    name = "deletion_auc"
    display_name = "Deletion AUC"
    category = "faithfulness"
    higher_is_better = False
    value_range = (0.0, 1.0)
    needs = frozenset({"activation"})
    paper = "Petsiuk et al. 2018, arXiv:1806.07421"

    @dataclass(frozen=True)
    class Params:
        steps: int = 50
        replace: str = "constant"
        fill: float = 0.0
        blur_sigma: float = 0.0

        def check(self):
            if self.steps < 2:
                return f"steps is {self.steps}; expected ≥ 2"
            if self.replace not in ("constant", "blur"):
                return f"replace is {self.replace!r}; expected 'constant' or 'blur'"
            return None

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        return self.params.steps  # steps + 1 points; the first (no pixel moved) is p(x), known

    def evaluate(self, ctx):
        p = self.params
        order = pixel_order(ctx.saliency, ctx.seed)
        dest = reference_images(ctx.images, p.replace, p.fill, p.blur_sigma)
        known = clean_probs(ctx) if ctx.probs is not None else None
        curve = perturbation_curve(ctx.model, ctx.images, dest, order, ctx.targets, p.steps, ctx.batch_size,
                                   known_source=known)
        out = normalised_auc(curve)
        out[~finite_maps(ctx.saliency)] = np.nan
        return out
