"""GradientSHAP (expected gradients)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from .base import Explainer, pair_generator, sample_chunks, to_device

BASELINES = ("black", "white", "black_white", "uniform")


@register
class GradientSHAP(Explainer):
    """E[(x + ε − x') ⊙ ∂F(x' + α(x + ε − x'))/∂x] over baselines x', α ~ U(0, 1), ε ~ N(0, σ²).

    Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017
    (SHAP's GradientExplainer); Erion et al. 2021, "expected gradients"; the same estimator as
    Captum's ``GradientShap``. ``baselines``: "black", "white", "black_white" (each sample picks
    one) or "uniform" (random noise images). Sums over channels approximate Shapley values:
    Σ attributions ≈ F(x) − E[F(x')]. Draws come from a generator seeded by (``seed``, image
    content), so maps do not depend on the batch.
    """

    name = "gradient_shap"
    display_name = "GradientSHAP"
    paper = "Lundberg & Lee 2017, arXiv:1705.07874"
    smoke_params = {"samples": 3}

    @dataclass(frozen=True)
    class Params:
        samples: int = 25
        baselines: str = "black_white"
        noise: float = 0.0
        seed: int = 0

        def check(self):
            if self.samples < 1:
                return f"samples is {self.samples}; expected ≥ 1"
            if self.baselines not in BASELINES:
                return f"baselines is {self.baselines!r}; expected one of {BASELINES}"
            if self.noise < 0:
                return f"noise is {self.noise}; expected ≥ 0"
            return None

    def passes_per_pair(self, image_shape) -> int:
        return self.params.samples

    def draws(self, image: torch.Tensor):
        """(baselines (S, C, H, W), α (S,), ε (S, C, H, W)) for one image."""
        p, shape = self.params, (self.params.samples, *image.shape)
        g = pair_generator(p.seed, image)
        alpha = torch.rand(p.samples, generator=g)
        eps = torch.randn(shape, generator=g) * p.noise
        if p.baselines == "uniform":
            base = torch.rand(shape, generator=g)
        else:
            levels = {"black": [0.0], "white": [1.0], "black_white": [0.0, 1.0]}[p.baselines]
            pick = torch.randint(len(levels), (p.samples,), generator=g)
            base = torch.tensor(levels)[pick].view(-1, 1, 1, 1).expand(shape)
        return base, alpha, eps

    uses_host_pixels = True  # the draws are seeded by the image's content

    def attribute(self, model, images, targets):
        p = self.params
        draws = {}
        host = self.host_pixels(images)
        dev = images.device
        out = torch.zeros_like(images)
        for pi, si in sample_chunks(images.shape[0], p.samples, self.forward_batch):
            for j in pi.unique().tolist():
                draws.setdefault(j, self.draws(host[j]))
            # Drawn and gathered on the host, moved once per pass (pi, si are host indices).
            base = to_device(torch.stack([draws[j][0][s] for j, s in zip(pi.tolist(), si.tolist())]), dev)
            alpha = to_device(torch.stack([draws[j][1][s] for j, s in zip(pi.tolist(), si.tolist())]), dev).view(-1, 1, 1, 1)
            eps = to_device(torch.stack([draws[j][2][s] for j, s in zip(pi.tolist(), si.tolist())]), dev)
            pi = to_device(pi, dev)
            diff = images[pi] + eps - base
            x = (base + alpha * diff).requires_grad_(True)
            logits = model(x)
            (grad,) = torch.autograd.grad(logits.gather(1, targets[pi].view(-1, 1)).sum(), x)
            out.index_add_(0, pi, grad * diff)
        return out / p.samples
