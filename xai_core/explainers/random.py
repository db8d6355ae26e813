"""The random reference explainer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from .base import Explainer, pair_generator


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

    def attribute(self, model, images, targets):
        out = torch.empty(images.shape[0], *images.shape[2:])
        for i in range(images.shape[0]):
            g = pair_generator(self.params.seed, images[i], int(targets[i]))
            out[i] = torch.rand(images.shape[2:], generator=g)
        return out
