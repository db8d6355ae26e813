"""Integrated Gradients (Captum)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import IntegratedGradients as CaptumIG

from . import register
from .base import Explainer


def integrated_gradients(model, images, targets, baseline: float, steps: int, method: str,
                         rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Captum IG from the constant image ``baseline``: (attributions (P, C, H, W), relative
    completeness error (P,) = |Σ attr − (F(x) − F(x'))| / |F(x) − F(x')|).

    ``rows``: model inputs per forward pass (Captum's internal batch), at least P.
    ``targets``: host ints (a list), so that Captum never reads a device tensor per pass.
    """
    base = torch.full_like(images, baseline)
    attr, delta = CaptumIG(model.module).attribute(
        images, baselines=base, target=targets.tolist() if isinstance(targets, torch.Tensor) else list(targets),
        n_steps=steps, method=method,
        internal_batch_size=max(rows, images.shape[0]), return_convergence_delta=True,
    )
    # Captum's delta = Σ attr − (F(x) − F(x')), from its own two end-point passes.
    model.passes += images.shape[0] * (steps + 2)
    gap = attr.detach().flatten(1).sum(1) - delta
    return attr, delta.abs() / gap.abs().clamp_min(1e-6)


@register
class IntegratedGradients(Explainer):
    """(x − x') ⊙ ∫₀¹ ∂F(x' + α(x − x'))/∂x dα, Gauss–Legendre quadrature, summed over channels.

    Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017, eq. (1).
    Baseline: a constant image (0 = black). Completeness (Σ attributions = F(x) − F(x'),
    their Proposition 1) is checked per map; the mean relative error of the last call is
    ``diagnostics["completeness_error"]`` (also ``last_completeness_error``).
    """

    name = "integrated_gradients"
    display_name = "Integrated Gradients"
    paper = "Sundararajan et al. 2017, arXiv:1703.01365"
    smoke_params = {"steps": 4}

    @dataclass(frozen=True)
    class Params:
        steps: int = 50
        baseline: float = 0.0
        method: str = "gausslegendre"
        internal_batch_size: int = 0  # model inputs per forward pass; 0 = the explain batch size

        def check(self):
            if self.steps < 1:
                return f"steps is {self.steps}; expected ≥ 1"
            methods = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
            if self.method not in methods:
                return f"method is {self.method!r}; expected one of {methods}"
            return None

    def passes_per_pair(self, image_shape) -> int:
        return self.params.steps + 2  # the path and Captum's two end points (completeness)

    @property
    def last_completeness_error(self) -> float | None:
        return self.diagnostics.get("completeness_error")

    def attribute(self, model, images, targets):
        p = self.params
        attr, err = integrated_gradients(model, images, self.host_targets(targets), p.baseline, p.steps, p.method,
                                         p.internal_batch_size or self.forward_batch)
        self.record("completeness_error", err)
        return attr
