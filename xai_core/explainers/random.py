"""The random reference explainer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from .base import Explainer


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
            # Derive the seed from the pixels so that the map is a function of the pair.
            h = int((images[i].sum() * 1e4).round().item()) % (2**31)
            g = torch.Generator().manual_seed(self.params.seed * 1_000_003 + h * 31 + int(targets[i]))
            out[i] = torch.rand(images.shape[2:], generator=g)
        return out
