"""Insertion AUC."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from ._curves import gaussian_blur, normalised_auc, perturbation_curve, pixel_order
from .base import Metric


@register
class InsertionAUC(Metric):
    """Area under the class-probability curve as the most salient pixels are inserted first
    into a blurred (or constant) copy of the image.

    Petsiuk, Das & Saenko, "RISE", BMVC 2018, §4.1: insertion starts from a blurred image so
    that the curve measures the information the pixels add, not the artefact of sharp
    edges. Raw value: normalised trapezoid AUC of p(target) ∈ [0, 1]; HIGHER is better.
    """

    name = "insertion_auc"
    display_name = "Insertion AUC"
    category = "faithfulness"
    higher_is_better = True
    value_range = (0.0, 1.0)
    needs = frozenset({"activation"})
    paper = "Petsiuk et al. 2018, arXiv:1806.07421"

    @dataclass(frozen=True)
    class Params:
        steps: int = 50
        start: str = "blur"
        blur_sigma: float = 0.0
        fill: float = 0.0

        def check(self):
            if self.steps < 2:
                return f"steps is {self.steps}; expected ≥ 2"
            if self.start not in ("blur", "constant"):
                return f"start is {self.start!r}; expected 'blur' or 'constant'"
            return None

    def start_images(self, images: torch.Tensor) -> torch.Tensor:
        if self.params.start == "constant":
            return torch.full_like(images, self.params.fill)
        # 0 = auto: a blur that removes digit-scale detail, ~ 1/16 of the short side.
        sigma = self.params.blur_sigma or max(1.0, min(images.shape[2:]) / 16)
        return gaussian_blur(images, sigma)

    def evaluate(self, ctx):
        order = pixel_order(ctx.saliency, ctx.seed)
        start = self.start_images(ctx.images)
        curve = perturbation_curve(ctx.model, start, ctx.images, order, ctx.targets, self.params.steps, ctx.batch_size)
        return normalised_auc(curve)
