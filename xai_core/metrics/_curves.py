"""Batched perturbation curves shared by the deletion / insertion family.

All (pair, step) images of a batch go through the model together, in chunks of
``batch_size`` images, so the number of forward passes is exactly P × (steps + 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pixel_order(saliency: torch.Tensor, seed: int) -> torch.Tensor:
    """(P, H·W) pixel indices, most salient first. Ties are broken by a seeded random
    permutation, not by raster order, which would favour maps with large flat regions."""
    p, h, w = saliency.shape
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(h * w, generator=g)
    flat = saliency.reshape(p, -1)[:, perm]
    order = torch.argsort(-flat, dim=1, stable=True)
    return perm[order]


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) blurred with a separable Gaussian of ``sigma`` pixels (reflect padding)."""
    if sigma <= 0:
        return images.clone()
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    pad = min(radius, images.shape[2] - 1, images.shape[3] - 1)
    out = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad == radius else F.pad(images, (radius,) * 4, mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return out


@torch.no_grad()
def perturbation_curve(model, source: torch.Tensor, dest: torch.Tensor, order: torch.Tensor,
                       targets: torch.Tensor, steps: int, batch_size: int) -> np.ndarray:
    """Probability of ``targets`` as the top pixels of ``order`` move from ``source`` to ``dest``.

    source, dest: (P, C, H, W); order: (P, H·W). Step k (0..steps) has the first
    round(k/steps · H·W) pixels of ``order`` taken from ``dest``. Returns (P, steps + 1).
    """
    p, c, h, w = source.shape
    n_pix = h * w
    counts = torch.round(torch.linspace(0, n_pix, steps + 1)).long()
    # rank[p, pixel] = position of the pixel in the order; pixel moved at step k iff rank < counts[k].
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pix).expand(p, -1).contiguous())
    total = p * (steps + 1)
    probs = torch.empty(total)
    flat_src, flat_dst = source.reshape(p, c, -1), dest.reshape(p, c, -1)
    for start in range(0, total, batch_size):
        ids = torch.arange(start, min(start + batch_size, total))
        pi, ki = ids // (steps + 1), ids % (steps + 1)
        moved = (rank[pi] < counts[ki].unsqueeze(1)).unsqueeze(1)  # (B, 1, HW)
        x = torch.where(moved, flat_dst[pi], flat_src[pi]).reshape(-1, c, h, w)
        probs[ids] = model.probs(x).gather(1, targets[pi].view(-1, 1)).view(-1)
    return probs.view(p, steps + 1).numpy().astype(np.float64)


def normalised_auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area under (P, S + 1) curves over x ∈ [0, 1]; a curve at 1 has area 1."""
    s = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(axis=1) / (2.0 * s)
