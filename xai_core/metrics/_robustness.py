"""Shared body of the sensitivity metrics (Yeh et al. 2019), drawn exactly as
``captum.metrics.sensitivity_max`` draws them, so that the values agree with Captum."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..devices import to_device, to_host
from ..errors import MetricError
from .base import Metric, finite_maps


def relative_sensitivities(ctx, radius: float, samples: int) -> np.ndarray:
    """‖S(x + δ) − S(x)‖_F / ‖S(x)‖_F for ``samples`` draws δ ~ U[−radius, radius]^(C·H·W)
    per pair: (P, samples) float64.

    Noise is drawn in Captum's layout — the pairs repeated ``samples`` times each
    (``repeat_interleave``), one uniform draw over that tensor from a generator seeded with
    ``ctx.seed`` — so ``captum.metrics.sensitivity_max`` after ``torch.manual_seed(ctx.seed)``
    sees the same δ. A zero-norm map divides by 1, as Captum does. The perturbed copies of
    many pairs go to ``ctx.explain`` together, in calls of about ``ctx.batch_size`` images
    (consecutive uniform draws concatenate to the single draw, so chunking does not change δ).
    """
    if ctx.explain is None:
        raise MetricError("sensitivity metrics need ctx.explain to recompute maps; the context has none")
    p = len(ctx)
    dev = ctx.images.device
    base = ctx.saliency.float()
    denom = torch.linalg.vector_norm(base.reshape(p, -1), dim=1)
    denom = torch.where(denom == 0, torch.ones_like(denom), denom)
    base, denom = to_device(base, dev), to_device(denom, dev)
    gen = ctx.generator()
    per_call = max(1, ctx.batch_size // samples)
    out = []
    for start in range(0, p, per_call):
        sl = slice(start, min(start + per_call, p))
        x = torch.repeat_interleave(ctx.images[sl], samples, dim=0)
        # δ is drawn on the host (Captum's draw, the same on every device) and moved.
        x = x + to_device(torch.empty(x.shape, dtype=x.dtype).uniform_(-radius, radius, generator=gen), dev)
        maps = ctx.explain(x, torch.repeat_interleave(ctx.targets[sl], samples)).float()
        diff = torch.repeat_interleave(base[sl], samples, dim=0) - maps
        norm = torch.linalg.vector_norm(diff.reshape(diff.shape[0], -1), dim=1)
        out.append((norm / torch.repeat_interleave(denom[sl], samples)).view(-1, samples).double())
    return to_host(torch.cat(out)).numpy() if out else np.empty((p, samples))


class SensitivityMetric(Metric):
    """Relative explanation change under small uniform input noise; lower is better.

    Raw ∈ [0, ∞) (0: the map does not move). Score: exp(−x), the mapping of MindSpore's
    robustness benchmark: 1 for a perfectly stable map, 1/e when the change equals the
    map's own norm. Cost: P × samples explained pairs (no extra forward pass for the map of
    x itself, which is ``ctx.saliency``).
    """

    category = "robustness"
    higher_is_better = False
    value_range = (0.0, float("inf"))
    needs = frozenset({"explainer"})
    paper = "Yeh et al. 2019, arXiv:1901.09392"
    score_mapping = "exp(-x)"

    @dataclass(frozen=True)
    class Params:
        radius: float = 0.02
        samples: int = 10

        def check(self):
            if self.radius <= 0:
                return f"radius is {self.radius}; expected > 0 (pixels are in [0, 1], 0.02 = 2 % of the range)"
            if self.samples < 1:
                return f"samples is {self.samples}; expected ≥ 1"
            return None

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        per = explainer.passes_per_image(image_shape, 1)
        return None if per is None else self.params.samples * per  # each noisy copy explained again

    def reduce(self, sens: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self, ctx):
        if len(ctx) == 0:
            return np.zeros(0)
        out = self.reduce(relative_sensitivities(ctx, self.params.radius, self.params.samples))
        out[~finite_maps(ctx.saliency)] = np.nan
        return out

    def normalise(self, raw):
        x = np.asarray(raw, dtype=np.float64)
        return np.exp(-np.clip(x, 0.0, None))
