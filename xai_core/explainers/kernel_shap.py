"""KernelSHAP on superpixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from ._perturbation import PerturbationExplainer, check_output, solve
from ._segments import check_superpixel_params, superpixels
from .base import pair_generator, to_device


def shapley_coalitions(n_features: int, n_samples: int, g: torch.Generator) -> torch.Tensor:
    """(n, M) 0/1 coalitions drawn from the Shapley kernel: size k with probability ∝
    (M − 1) / (k (M − k)), members uniform, each draw followed by its complement (paired
    sampling, as in the shap package) — so a plain least-squares fit estimates the
    kernel-weighted one (Lundberg & Lee 2017, Theorem 2)."""
    m = n_features
    k = torch.arange(1, m)
    size_p = (m - 1) / (k * (m - k)).double()
    half = max(1, n_samples // 2)
    sizes = k[torch.multinomial(size_p, half, replacement=True, generator=g)]
    ranks = torch.rand(half, m, generator=g).argsort(1).argsort(1)
    z = (ranks < sizes.view(-1, 1)).double()
    return torch.cat([z, 1.0 - z])[:n_samples] if n_samples > 1 else z


@register
class KernelSHAP(PerturbationExplainer):
    """Shapley values of superpixels by kernel-weighted linear regression, efficiency exact.

    Lundberg & Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017,
    Theorem 2. Coalitions are sampled from the Shapley kernel (paired), the full and the empty
    image are evaluated exactly and Σ φ = F(x) − F(all filled) is imposed by eliminating one
    variable (as the shap package does). Superpixels and ``fill`` as in LIME; each φ is painted
    on its superpixel's pixels (Captum's feature-mask convention). Samples come from (``seed``,
    image content) and are shared by the labels of an image.
    """

    name = "kernel_shap"
    display_name = "KernelSHAP"
    paper = "Lundberg & Lee 2017, arXiv:1705.07874"
    smoke_params = {"samples": 16}

    @dataclass(frozen=True)
    class Params:
        samples: int = 1000
        segmentation: str = "slic"
        segments: int = 0
        fill: float = 0.0
        seed: int = 0
        output: str = "prob"

        def check(self):
            return check_superpixel_params(self.samples, self.segmentation, self.segments) or check_output(self.output)

    def passes_per_explained_image(self, image_shape) -> int:
        return self.params.samples + 2  # the coalitions, the full and the empty image

    def shapley_values(self, z: torch.Tensor, y: torch.Tensor, full: torch.Tensor, empty: torch.Tensor,
                       infos: list | None = None) -> torch.Tensor:
        """φ (M, L) from coalitions z (n, M), their scores y (n, L) and the end points (L,);
        ``infos``: defer the singularity check (see :func:`._perturbation.solve`)."""
        m = z.shape[1]
        delta = full - empty
        if m == 1:
            return delta.view(1, -1)
        # y − f(∅) = Σ_j φ_j z_j with φ_M = Δ − Σ_{j<M} φ_j  ⇒  y − f(∅) − z_M Δ = Σ_{j<M} φ_j (z_j − z_M)
        a = z[:, :-1] - z[:, -1:]
        b = y - empty - z[:, -1:] * delta
        gram = a.T @ a
        gram += 1e-8 * (gram.diagonal().mean() + 1.0) * torch.eye(m - 1, dtype=gram.dtype, device=gram.device)
        head = solve(gram, a.T @ b, infos)
        return torch.cat([head, (delta - head.sum(0)).view(1, -1)])

    uses_host_pixels = True  # superpixels and the seed come from the image's content

    def attribute_grouped(self, model, images, targets):
        p = self.params
        out, infos = [], []
        for img, host, labels in zip(images, self.host_pixels(images), targets):
            if not labels:
                out.append(torch.zeros(0, *img.shape[1:], device=img.device))
                continue
            seg = torch.from_numpy(superpixels(host, p.segmentation, p.segments))
            m = int(seg.max()) + 1
            g = pair_generator(p.seed, host)
            z = shapley_coalitions(m, p.samples, g) if m > 1 else torch.zeros(0, 1, dtype=torch.float64)
            ends = torch.stack([torch.ones(m), torch.zeros(m)]).double()
            keep = torch.cat([ends, z])  # drawn on the host; region_scores moves it once
            seg, z = to_device(seg, img.device), to_device(z, img.device)
            y = self.region_scores(model, img, seg, keep, p.fill)[:, torch.as_tensor(labels, device=img.device)].double()
            phi = self.shapley_values(z, y[2:], y[0], y[1], infos)  # (M, L)
            out.append(phi.T[:, seg].float())
        self.check_solves(infos, "Shapley regression")
        return out
