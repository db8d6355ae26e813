"""ROAD: RemOve And Debias (Rong et al., ICML 2022) — noisy linear imputation and the shared
metric body of ``road_morf`` and ``road_lerf``.

Removing pixels by filling a constant leaks the removal mask's shape to the model (the
"class information leakage" Rong et al. describe), so ROAD fills each removed pixel with the
weighted mean of its 8 neighbours (1/6 per edge neighbour, 1/12 per diagonal one, as in their
reference code), solved jointly for all removed pixels as one sparse linear system, plus
Gaussian noise of σ = ``noise`` (their default 0.01).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from ..devices import to_device, to_host
from ._curves import device_target_probs, pixel_order
from .base import Metric, finite_maps

NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def linear_impute(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Noise-free linear imputation of one image.

    image: (C, H, W) float64; removed: (H, W) bool with at least one pixel kept. Each removed
    pixel u_i satisfies Σ_j w_ij (u_i − u_j) = 0 over its in-image neighbours j (kept
    neighbours are constants), i.e. u_i is the weighted mean of its neighbours: a discrete
    Dirichlet problem whose matrix is symmetric positive definite when a pixel is kept.
    Returns (C, m) values of the m removed pixels in raster order.
    """
    c, h, w = image.shape
    flat_removed = removed.reshape(-1)
    idx = np.flatnonzero(flat_removed)
    m = idx.size
    var = np.full(h * w, -1)
    var[idx] = np.arange(m)
    row, col = np.divmod(idx, w)
    flat = image.reshape(c, -1)
    diag = np.zeros(m)
    rhs = np.zeros((m, c))
    rows, cols, vals = [np.arange(m)], [np.arange(m)], []
    for (dr, dc), wt in NEIGHBOURS:
        rr, cc = row + dr, col + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        diag[inside] += wt
        eq = np.flatnonzero(inside)
        nb = rr[inside] * w + cc[inside]
        unknown = flat_removed[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -wt))
        rhs[eq[~unknown]] += wt * flat[:, nb[~unknown]].T  # eq is unique per offset
    a = sp.csc_matrix((np.concatenate([diag, *vals]), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))
    # Minimum-degree ordering on AᵀA + A suits this symmetric 2-D stencil (less fill-in than COLAMD).
    sol = splu(a, permc_spec="MMD_AT_PLUS_A").solve(rhs)
    return sol.reshape(m, c).T


def noisy_linear_impute(images: torch.Tensor, removed: torch.Tensor, noise: float,
                        generator: torch.Generator) -> torch.Tensor:
    """images: (N, C, H, W) float32; removed: (N, H, W) bool. Returns (N, C, H, W) float32
    with removed pixels imputed linearly plus N(0, noise²) noise (ROAD's default 0.01)."""
    out = images.clone()
    n, c = images.shape[:2]
    x64 = images.double().numpy()
    rm = removed.numpy()
    for i in range(n):
        idx = np.flatnonzero(rm[i].reshape(-1))
        if idx.size == 0:
            continue
        vals = torch.from_numpy(linear_impute(x64[i], rm[i]))
        if noise > 0:
            vals = vals + noise * torch.randn(vals.shape, generator=generator, dtype=torch.float64)
        out[i].view(c, -1)[:, torch.from_numpy(idx)] = vals.float()
    return out


class RoadMetric(Metric):
    """Shared body: mean p(target) over the removal ``fractions`` after imputing the removed
    pixels. Forward passes: P × len(fractions); one sparse solve per (pair, fraction)."""

    most_relevant_first: bool = True
    category = "faithfulness"
    value_range = (0.0, 1.0)
    needs = frozenset({"activation"})
    paper = "Rong et al. 2022, arXiv:2202.00449"

    @dataclass(frozen=True)
    class Params:
        fractions: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        noise: float = 0.01

        def check(self):
            if not self.fractions or not all(0 < float(f) < 1 for f in self.fractions):
                return f"fractions is {list(self.fractions)}; expected a non-empty list of values in (0, 1)"
            if self.noise < 0:
                return f"noise is {self.noise}; expected ≥ 0"
            return None

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        return len(self.params.fractions)

    def curve(self, ctx) -> np.ndarray:
        """(P, F) p(target) after removing each fraction, imputed."""
        p_count = len(ctx)
        h, w = ctx.saliency.shape[1:]
        n_pix = h * w
        order = pixel_order(ctx.saliency, ctx.seed)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(n_pix).expand(p_count, -1).contiguous())
        fracs = [float(f) for f in self.params.fractions]
        gen = ctx.generator()
        out = np.empty((p_count, len(fracs)))
        # One model batch at a time: impute ``batch_size`` images (sparse solves on the host
        # copy), then one forward call on the device; the probabilities come back once.
        items = [(i, j) for i in range(p_count) for j in range(len(fracs))]
        host, dev = ctx.host_images(), ctx.images.device
        probs = []
        for start in range(0, len(items), ctx.batch_size):
            chunk = items[start: start + ctx.batch_size]
            pi = torch.as_tensor([i for i, _ in chunk])
            removed = torch.stack([self.removed(rank[i], fracs[j], n_pix) for i, j in chunk]).view(-1, h, w)
            x = noisy_linear_impute(host[pi], removed, self.params.noise, gen)
            probs.append(device_target_probs(ctx.model, to_device(x, dev), ctx.targets[to_device(pi, dev)], len(chunk)))
        if probs:
            for (i, j), v in zip(items, to_host(torch.cat(probs)).numpy()):
                out[i, j] = v
        return out

    def removed(self, rank: torch.Tensor, fraction: float, n_pix: int) -> torch.Tensor:
        k = min(n_pix - 1, max(1, int(round(fraction * n_pix))))
        return rank < k if self.most_relevant_first else rank >= n_pix - k

    def evaluate(self, ctx):
        out = self.curve(ctx).mean(axis=1)
        out[~finite_maps(ctx.saliency)] = np.nan
        return out
