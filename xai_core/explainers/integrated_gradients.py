"""Integrated Gradients (Captum)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients as CaptumIG

from . import register
from .base import Explainer


@register
class IntegratedGradients(Explainer):
    """(x − x') ⊙ ∫₀¹ ∂F(x' + α(x − x'))/∂x dα, Gauss–Legendre quadrature, summed over channels.

    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017, eq. (1).
    Baseline: a constant image (0 = black). Completeness (Σ attributions = F(x) − F(x'),
    their Proposition 1) is checked per map; the mean relative error of the last call is kept
    in ``last_completeness_error``.
    """

    name = "integrated_gradients"
    display_name = "Integrated Gradients"
    paper = "Sundararajan et al. 2017, arXiv:1703.01365"

    @dataclass(frozen=True)
    class Params:
        steps: int = 50
        baseline: float = 0.0
        method: str = "gausslegendre"
        internal_batch_size: int = 0

        def check(self):
            if self.steps < 1:
                return f"steps is {self.steps}; expected ≥ 1"
            return None

    last_completeness_error: float | None = None

    def attribute(self, model, images, targets):
        p = self.params
        ig = CaptumIG(model.module)
        baseline = torch.full_like(images, p.baseline)
        attr, delta = ig.attribute(
            images, baselines=baseline, target=targets, n_steps=p.steps, method=p.method,
            internal_batch_size=p.internal_batch_size or None, return_convergence_delta=True,
        )
        model.passes += images.shape[0] * (p.steps + 2)
        with torch.no_grad():
            gap = (model.module(images) - model.module(baseline)).gather(1, targets.view(-1, 1)).view(-1)
        rel = delta.abs() / gap.abs().clamp_min(1e-6)
        self.last_completeness_error = float(rel.mean())
        return attr
