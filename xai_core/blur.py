"""The Gaussian blur shared by the perturbation code: the blurred start image of insertion
curves and blurred removal in the faithfulness metrics, the blurred copy of hierarchical
occlusion, the blur fill of anchors, and the dashboard's counterfactual composites."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) → (N, C, H, W), separable Gaussian, reflect padding (no dark border,
    which a zero padding would add and which a model may read as an edge)."""
    if sigma <= 0:
        return images.clone()
    n, c, h, w = images.shape
    radius = max(1, min(int(math.ceil(3.0 * sigma)), h - 1, w - 1))
    t = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = images.reshape(n * c, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)
