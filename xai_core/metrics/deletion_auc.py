"""Deletion AUC."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from ._curves import normalised_auc, perturbation_curve, pixel_order
from .base import Metric


@register
class DeletionAUC(Metric):
    """Area under the class-probability curve as the most salient pixels are deleted first.

    Petsiuk, Das & Saenko, "RISE", BMVC 2018, §4.1. Raw value: normalised trapezoid AUC of
    p(target) over the deleted fraction ∈ [0, 1]; a faithful map makes p fall fast, so LOWER
    is better (MindSpore reports 1 − AUC of p₀ − p_k, which inverts the meaning; we do not).
    The [0, 1] score is 1 − AUC.
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
        fill: float = 0.0

        def check(self):
            return None if self.steps >= 2 else f"steps is {self.steps}; expected ≥ 2"

    def evaluate(self, ctx):
        order = pixel_order(ctx.saliency, ctx.seed)
        dest = torch.full_like(ctx.images, self.params.fill)
        curve = perturbation_curve(ctx.model, ctx.images, dest, order, ctx.targets, self.params.steps, ctx.batch_size)
        return normalised_auc(curve)
