"""The random reference explainer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from .base import Explainer, pair_generator, to_device, to_host


@register
class RandomMap(Explainer):
    """Uniform noise in [0, 1): the floor any real explainer should beat on every metric.

    Seeded per (seed, image content, target), so a map does not depend on batch order.
    """

    name = "random"
    display_name = "Random (reference)"
    needs_gradients = False
    signed = False
    paper = "reference baseline (Adebayo et al. 2018, arXiv:1810.03292, use random maps as the null)"
    channel_reduction = "none"

    @dataclass(frozen=True)
    class Params:
        seed: int = 0

    uses_host_pixels = True  # seeded by the image's content

    def passes_per_pair(self, image_shape) -> int:
        return 0

    def attribute(self, model, images, targets):
        host = self.host_pixels(images)
        out = torch.empty(images.shape[0], *images.shape[2:])
        for i, t in enumerate(self.host_targets(targets)):
            g = pair_generator(self.params.seed, host[i], t)
            out[i] = torch.rand(images.shape[2:], generator=g)
        return to_device(out, images.device)
