"""SmoothGrad."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from .base import Explainer, pair_generator, sample_chunks, to_device


@register
class SmoothGrad(Explainer):
    """Mean gradient over noisy copies x + N(0, σ²), then max |·| over colour channels.

    Smilkov et al., "SmoothGrad: removing noise by adding noise" (2017), eq. (1); σ = ``noise``
    × the input range (pixels span [0, 1], so range 1; the paper's best is 10–20 %, ANCHORS
    recommends 15 %), 25 samples. The noise of an image is drawn from a generator seeded by
    (``seed``, image content), so a map does not depend on the batch and the labels of one
    image share their noise (their maps differ by the label only). Captum's NoiseTunnel draws
    from the global RNG for the whole batch, which would make a map depend on its neighbours.
    """

    name = "smoothgrad"
    display_name = "SmoothGrad"
    paper = "Smilkov et al. 2017, arXiv:1706.03825"
    signed = False
    channel_reduction = "max_abs"
    smoke_params = {"samples": 3}

    @dataclass(frozen=True)
    class Params:
        samples: int = 25
        noise: float = 0.15
        seed: int = 0

        def check(self):
            if self.samples < 1:
                return f"samples is {self.samples}; expected ≥ 1"
            if self.noise < 0:
                return f"noise is {self.noise}; expected ≥ 0 (a fraction of the input range)"
            return None

    uses_host_pixels = True  # the noise is seeded by the image's content

    def passes_per_pair(self, image_shape) -> int:
        return self.params.samples

    def attribute(self, model, images, targets):
        p = self.params
        noise = {}
        host = self.host_pixels(images)
        out = torch.zeros_like(images)
        for pi, si in sample_chunks(images.shape[0], p.samples, self.forward_batch):
            for j in pi.unique().tolist():
                if j not in noise:
                    g = pair_generator(p.seed, host[j])
                    noise[j] = torch.randn((p.samples, *images.shape[1:]), generator=g) * p.noise
            # Drawn and gathered on the host, moved once per pass (pi, si are host indices).
            eps = torch.stack([noise[j][s] for j, s in zip(pi.tolist(), si.tolist())])
            pi = to_device(pi, images.device)
            x = images[pi] + to_device(eps, images.device)
            x.requires_grad_(True)
            logits = model(x)
            (grad,) = torch.autograd.grad(logits.gather(1, targets[pi].view(-1, 1)).sum(), x)
            out.index_add_(0, pi, grad)
        return out / p.samples
