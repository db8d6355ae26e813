"""Intersection over Salient Region."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from .base import Metric


@register
class IoSR(Metric):
    """|object ∩ {s > θ · max s}| / |{s > θ · max s}|, θ = 0.5.

    The localisation metric of MindSpore's explainer benchmark ("Localization", IoSR mode).
    Ground-truth labels with a box or mask only; NaN elsewhere or when the map has no
    positive value.
    """

    name = "iosr"
    display_name = "IoSR"
    category = "localization"
    higher_is_better = True
    value_range = (0.0, 1.0)
    needs = frozenset({"masks"})
    paper = "MindSpore XAI Localization benchmark (IoSR)"

    @dataclass(frozen=True)
    class Params:
        threshold: float = 0.5

        def check(self):
            return None if 0 < self.threshold < 1 else f"threshold is {self.threshold}; expected 0 < threshold < 1"

    def evaluate(self, ctx):
        out = np.full(len(ctx), np.nan)
        if ctx.masks is None:
            return out
        sal = ctx.saliency.numpy()
        for i in range(len(ctx)):
            if not (ctx.has_mask[i] and ctx.is_ground_truth[i]):
                continue
            s = sal[i]
            top = s.max()
            if not np.isfinite(top) or top <= 0:
                continue
            region = s > self.params.threshold * top
            out[i] = float((region & ctx.masks[i]).sum() / region.sum())
        return out
