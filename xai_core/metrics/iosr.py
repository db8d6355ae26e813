"""Intersection over Salient Region."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import register
from .base import Metric, finite_maps


@register
class IoSR(Metric):
    """|object ∩ {s > θ · max s}| / |{s > θ · max s}|, θ = 0.5.

    The localisation metric of MindSpore's explainer benchmark ("Localization", IoSR mode).
    Ground-truth labels with a box or mask only; NaN elsewhere, for non-finite maps, and when
    the map has no positive value (no salient region exists).
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
        use = ctx.localisable() & finite_maps(ctx.saliency)
        if not use.any():
            return out
        sal = ctx.saliency.numpy().reshape(len(ctx), -1)[use]
        masks = np.asarray(ctx.masks).reshape(len(ctx), -1)[use]
        top = sal.max(axis=1, keepdims=True)
        region = sal > self.params.threshold * top
        size = region.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = (region & masks).sum(axis=1) / size
        vals[top[:, 0] <= 0] = np.nan
        out[use] = vals
        return out
