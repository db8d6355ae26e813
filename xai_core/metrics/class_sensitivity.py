"""Class Sensitivity (label-agnostic)."""

from __future__ import annotations

import numpy as np
import torch

from ..devices import to_host
from ..errors import MetricError
from . import register
from ._stats import pearson_rows
from .base import Metric


@register
class ClassSensitivity(Metric):
    """Pearson correlation between the maps of the most and the least probable class.

    Rebuffi et al., "There and Back Again: Revisiting Backpropagation Saliency Methods", CVPR
    2020 (a method that explains the class should give different maps for different
    classes); the label-agnostic form of MindSpore's ``ClassSensitivity``. One value per
    image (stored with label −1): raw = Pearson(S_argmax, S_argmin) ∈ [−1, 1], LOWER is
    better. When a map is constant the correlation is undefined: 1 if both maps are equal
    (the explainer ignored the class), else 0. Score: (1 − x) / 2, as MindSpore.
    Cost: one ``explain`` call on 2N pairs (+ N forward passes when ``ctx.probs`` is not
    given, to find the least probable class).
    """

    name = "class_sensitivity"
    display_name = "Class Sensitivity"
    category = "sensitivity"
    higher_is_better = False
    value_range = (-1.0, 1.0)
    needs = frozenset({"explainer"})
    label_agnostic = True
    paper = "Rebuffi et al. 2020, arXiv:2004.02866"
    score_mapping = "(1 - x) / 2"

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        return explainer.passes_per_image(image_shape, 2)  # the top and the bottom class, explained again

    def evaluate(self, ctx):
        n = len(ctx)
        if n == 0:
            return np.zeros(0)
        if ctx.explain is None:
            raise MetricError(f"{self.instance_name}: the context has no explain function; expected one to recompute maps")
        if ctx.probs is not None:
            probs = ctx.probs
        else:
            probs = ctx.model.predict(ctx.images, batch_size=ctx.batch_size)
        top = ctx.targets  # the engine passes the argmax class of each image
        bottom = probs.argmin(dim=1)
        maps = to_host(ctx.explain(torch.cat([ctx.images, ctx.images]), torch.cat([top, bottom])))
        a = maps[:n].reshape(n, -1).double().numpy()
        b = maps[n:].reshape(n, -1).double().numpy()
        out = pearson_rows(a, b)
        undefined = np.isnan(out)
        out[undefined] = np.where((a == b).all(axis=1), 1.0, 0.0)[undefined]
        bad = ~(np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1))
        out[bad] = np.nan
        return out

    def normalise(self, raw):
        return np.clip((1.0 - np.asarray(raw, dtype=np.float64)) / 2.0, 0.0, 1.0)
