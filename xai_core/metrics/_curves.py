"""Batched perturbation curves shared by the deletion / insertion / naive-faithfulness family.

All (pair, step) images of a batch go through the model together, in chunks of
``batch_size`` images, so a curve of S + 1 points over P pairs costs P × (S + 1) forward
passes — P × S when the probability of an end point (the unperturbed image) is already known.
"""

from __future__ import annotations

import numpy as np
import torch

from ..blur import gaussian_blur
from ..devices import to_device, to_host


def pixel_order(saliency: torch.Tensor, seed: int) -> torch.Tensor:
    """(P, H·W) pixel indices, most salient first. Ties are broken by a seeded random
    permutation, not by raster order, which would favour maps with large flat regions.
    Non-finite values rank last."""
    p, h, w = saliency.shape
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(h * w, generator=g)
    flat = torch.nan_to_num(saliency.reshape(p, -1)[:, perm].double(), nan=-np.inf, posinf=np.inf)
    order = torch.argsort(-flat, dim=1, stable=True)
    return perm[order]


def reference_images(images: torch.Tensor, mode: str, fill: float, blur_sigma: float) -> torch.Tensor:
    """What removed pixels become: a constant ``fill`` or a blurred copy of the image.
    ``blur_sigma`` ≤ 0 means auto: 1/16 of the short side, which wipes out digit-scale
    detail (Petsiuk et al. use a strong blur for insertion, §4.1)."""
    if mode == "constant":
        return torch.full_like(images, fill)
    sigma = blur_sigma if blur_sigma > 0 else max(1.0, min(images.shape[2:]) / 16)
    return gaussian_blur(images, sigma)


@torch.no_grad()
def device_target_probs(model, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
    """p(target | image) for (P, C, H, W) images, in chunks: (P,) float64 on the images'
    device (nothing crosses to the host), P forward passes."""
    out = [model.probs(images[i: i + batch_size]).gather(1, targets[i: i + batch_size].view(-1, 1)).view(-1).double()
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64, device=images.device)


def target_probs(model, images: torch.Tensor, targets: torch.Tensor, batch_size: int) -> np.ndarray:
    """:func:`device_target_probs` on the host: (P,) float64."""
    return to_host(device_target_probs(model, images, targets, batch_size)).numpy()


def clean_probs(ctx) -> np.ndarray:
    """p(target | x) of the unperturbed pairs: from ``ctx.probs`` when given (no pass),
    else P forward passes."""
    if ctx.probs is not None:
        return to_host(ctx.probs.gather(1, ctx.targets.view(-1, 1)).view(-1).double()).numpy()
    return target_probs(ctx.model, ctx.images, ctx.targets, ctx.batch_size)


@torch.no_grad()
def ranked_replacement_probs(model, source: torch.Tensor, dest: torch.Tensor, order: torch.Tensor,
                             targets: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, batch_size: int,
                             *, known_source: np.ndarray | None = None,
                             known_dest: np.ndarray | None = None) -> np.ndarray:
    """Probability of ``targets`` on images where the pixels ranked in [lo[k], hi[k]) of
    ``order`` come from ``dest`` and all others from ``source``.

    source, dest: (P, C, H, W) on the model's device; order: (P, H·W) pixel indices and lo,
    hi: (K,) int64 rank bounds, on the host. Returns (P, K) float64 on the host. Steps that
    move no pixel equal ``source`` and steps that move every pixel equal ``dest``: when
    ``known_source`` / ``known_dest`` ((P,) probabilities) are given those steps cost no
    forward pass. The ranks move to the device once; every step image is composed there and
    the probabilities come back once, after the last pass.
    """
    p, c, h, w = source.shape
    n_pix = h * w
    k_steps = lo.shape[0]
    out = np.full((p, k_steps), np.nan)
    none_moved = (hi <= lo).numpy()
    all_moved = ((lo <= 0) & (hi >= n_pix)).numpy()
    todo_k = np.ones(k_steps, dtype=bool)
    if known_source is not None:
        out[:, none_moved] = np.asarray(known_source, dtype=np.float64)[:, None]
        todo_k &= ~none_moved
    if known_dest is not None:
        out[:, all_moved] = np.asarray(known_dest, dtype=np.float64)[:, None]
        todo_k &= ~all_moved
    ks = torch.as_tensor(np.flatnonzero(todo_k))
    if p == 0 or ks.numel() == 0:
        return out
    # rank[p, pixel] = position of the pixel in the order.
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pix).expand(p, -1).contiguous())
    dev = source.device
    rank, lo_d, hi_d, ks_d = (to_device(t, dev) for t in (rank, lo, hi, ks))
    targets = to_device(targets, dev)
    flat_src, flat_dst = source.reshape(p, c, -1), dest.reshape(p, c, -1)
    n_k = ks.numel()
    total = p * n_k
    flat_out = torch.empty(total, dtype=torch.float64, device=dev)
    for start in range(0, total, batch_size):
        ids = torch.arange(start, min(start + batch_size, total), device=dev)
        pi, ki = ids // n_k, ks_d[ids % n_k]
        r = rank[pi]
        moved = ((r >= lo_d[ki].unsqueeze(1)) & (r < hi_d[ki].unsqueeze(1))).unsqueeze(1)  # (B, 1, HW)
        x = torch.where(moved, flat_dst[pi], flat_src[pi]).reshape(-1, c, h, w)
        flat_out[ids] = model.probs(x).gather(1, targets[pi].view(-1, 1)).view(-1).double()
    out[:, ks.numpy()] = to_host(flat_out.view(p, n_k)).numpy()
    return out


def perturbation_curve(model, source: torch.Tensor, dest: torch.Tensor, order: torch.Tensor,
                       targets: torch.Tensor, steps: int, batch_size: int, *,
                       known_source: np.ndarray | None = None,
                       known_dest: np.ndarray | None = None) -> np.ndarray:
    """Probability of ``targets`` as the top pixels of ``order`` move from ``source`` to ``dest``.

    source, dest: (P, C, H, W); order: (P, H·W). Step k (0..steps) has the first
    round(k/steps · H·W) pixels of ``order`` taken from ``dest``. Returns (P, steps + 1).
    """
    n_pix = source.shape[2] * source.shape[3]
    counts = torch.round(torch.linspace(0, n_pix, steps + 1)).long()
    return ranked_replacement_probs(model, source, dest, order, targets, torch.zeros_like(counts), counts,
                                    batch_size, known_source=known_source, known_dest=known_dest)


def normalised_auc(curve: np.ndarray) -> np.ndarray:
    """Trapezoid area under (P, S + 1) curves over x ∈ [0, 1]; a curve at 1 has area 1."""
    s = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(axis=1) / (2.0 * s)
