"""Hand-built models and images whose metric values can be worked out on paper (shared by
tests/metrics and tests/test_sanity.py; the fixtures live in conftest.py)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from xai_core.metrics import MetricContext
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel

SIZE = 16


class MeanModel(nn.Module):
    """logit_0 = logit(mean pixel), logit_1 = logit(1 − mean pixel): with a sigmoid, p₀ is
    exactly the mean pixel value, so deletion / insertion curves can be computed by hand."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3)).clamp(1e-6, 1 - 1e-6)
        return torch.stack([torch.logit(m), torch.logit(1 - m)], dim=1)


class LinearModel(nn.Module):
    """logits = W · x (flattened) + b: the gradient is W exactly, whatever the input."""

    def __init__(self, k: int = 3, size: int = SIZE, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(3 * size * size, k)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(self.fc.weight.shape, generator=g) * 0.05)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(x.flatten(1))


class SmoothNet(nn.Module):
    """A small random conv net with smooth (Softplus) units, so gradient maps move under
    input noise: the test bed of the Captum agreement checks. ``gain`` scales every weight
    so that the logits vary by O(1) over the input range."""

    def __init__(self, k: int = 3, seed: int = 0, gain: float = 5.0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Softplus(),
                                          nn.Conv2d(8, 8, 3, padding=1), nn.Softplus())
            self.pool = nn.AdaptiveAvgPool2d(2)
            self.head = nn.Linear(32, k)
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(gain)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


def handle(net: nn.Module, k: int, size: int = SIZE, activation: str = "sigmoid") -> ClassifierHandle:
    return ClassifierHandle(PixelSpaceModel(net.eval(), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), activation, (size, size), k)


def context(model, images, targets, saliency, **kw) -> MetricContext:
    return MetricContext(model, images, torch.as_tensor(targets, dtype=torch.long), saliency, **kw)
