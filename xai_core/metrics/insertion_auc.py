"""Insertion AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from ._curves import clean_probs, normalised_auc, perturbation_curve, pixel_order, reference_images
from .base import Metric, finite_maps


@register
class InsertionAUC(Metric):
    """Area under the class-probability curve as the most salient pixels are inserted first
    into a blurred (or constant) copy of the image.

    Petsiuk, Das & Saenko, "RISE", BMVC 2018, §4.1: insertion starts from a blurred image so
    that the curve measures the information the pixels add, not the artefact of sharp
    edges (``start="blur"``, σ = ``blur_sigma``, 0 = 1/16 of the short side; or
    ``start="constant"`` filled with ``fill``). Raw value: normalised trapezoid AUC of
    p(target) ∈ [0, 1]; HIGHER is better. Forward passes: P × steps (+ P when ``ctx.probs``
    is not given).
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

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        return self.params.steps  # as deletion: the untouched end is known

    def start_images(self, images):
        return reference_images(images, self.params.start, self.params.fill, self.params.blur_sigma)

    def evaluate(self, ctx):
        order = pixel_order(ctx.saliency, ctx.seed)
        known = clean_probs(ctx) if ctx.probs is not None else None
        curve = perturbation_curve(ctx.model, self.start_images(ctx.images), ctx.images, order, ctx.targets,
                                   self.params.steps, ctx.batch_size, known_dest=known)
        out = normalised_auc(curve)
        out[~finite_maps(ctx.saliency)] = np.nan
        return out
