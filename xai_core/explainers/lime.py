"""LIME on superpixels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rounding import unchanged_columns
from . import register
from ._perturbation import PerturbationExplainer, check_output, solve
from ._segments import check_superpixel_params, superpixels
from .base import pair_generator, to_device


def weighted_ridge(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, alpha: float,
                   infos: list | None = None, output: str = "prob") -> torch.Tensor:
    """Coefficients (S, L) of y (n, L) ≈ b + x (n, S) β with sample weights (n,), L2 penalty
    ``alpha`` and an unpenalised intercept — scikit-learn's ``Ridge(alpha).fit(x, y, weight)``,
    which LIME uses, in closed form for all labels at once. float64. ``infos``: defer the
    singularity check (see :func:`._perturbation.solve`). A label whose scores (``output``
    "prob" or "logit") no sample changes beyond rounding (:mod:`xai_core.rounding`) gets
    coefficients of exactly 0: centring constant scores would leave the rounding of their
    weighted mean (~1e-17), and the map would paint it, differently on every machine."""
    w = weight / weight.sum()
    xc = x - (w @ x)
    yc = y - (w @ y)
    yc[:, unchanged_columns(y, output)] = 0.0
    sw = weight.sqrt().view(-1, 1)
    xs, ys = xc * sw, yc * sw
    gram = xs.T @ xs + alpha * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return solve(gram, xs.T @ ys, infos)


@register
class LIME(PerturbationExplainer):
    """Weighted ridge regression of the class score on which superpixels are kept.

    Ribeiro, Singh & Guestrin, "Why Should I Trust You?", KDD 2016, eqs. (1)–(3), with the
    choices of the reference ``lime_image``: uniform on/off samples (the first one the full
    image), cosine distance to the full image, kernel sqrt(exp(−d²/0.25²)), Ridge(α = 1).
    Every superpixel's coefficient is painted on its pixels (no top-k feature selection: the
    dashboard shows the whole map). ``segmentation`` "slic" or "quickshift", ``segments`` the
    target count (0 = auto: ~100 at 224 px), ``fill`` the value of removed superpixels
    (ANCHORS: 0). Samples are drawn from (``seed``, image content) and shared by the labels.
    """

    name = "lime"
    display_name = "LIME"
    paper = "Ribeiro et al. 2016, arXiv:1602.04938"
    smoke_params = {"samples": 16}

    @dataclass(frozen=True)
    class Params:
        samples: int = 1000
        segmentation: str = "slic"
        segments: int = 0
        fill: float = 0.0
        kernel_width: float = 0.25
        ridge: float = 1.0
        seed: int = 0
        output: str = "prob"

        def check(self):
            if self.kernel_width <= 0 or self.ridge < 0:
                return f"kernel_width is {self.kernel_width} and ridge {self.ridge}; expected kernel_width > 0, ridge ≥ 0"
            return check_superpixel_params(self.samples, self.segmentation, self.segments) or check_output(self.output)

    uses_host_pixels = True  # superpixels and the seed come from the image's content

    def passes_per_explained_image(self, image_shape) -> int:
        return self.params.samples

    def attribute_grouped(self, model, images, targets):
        p = self.params
        out, infos = [], []
        for img, host, labels in zip(images, self.host_pixels(images), targets):
            if not labels:
                out.append(torch.zeros(0, *img.shape[1:], device=img.device))
                continue
            seg = torch.from_numpy(superpixels(host, p.segmentation, p.segments))
            n_seg = int(seg.max()) + 1
            g = pair_generator(p.seed, host)
            z = torch.randint(0, 2, (p.samples, n_seg), generator=g).double()
            z[0] = 1.0
            seg, z = to_device(seg, img.device), to_device(z, img.device)
            y = self.region_scores(model, img, seg, z, p.fill)[:, torch.as_tensor(labels, device=img.device)].double()
            on = z.sum(1)
            cos = on / (on.sqrt() * n_seg ** 0.5).clamp_min(1e-12)
            weight = torch.exp(-((1.0 - cos) ** 2) / p.kernel_width ** 2).sqrt()
            coef = weighted_ridge(z, y, weight, p.ridge, infos, p.output)  # (S, L)
            out.append(coef.T[:, seg].float())
        self.check_solves(infos, "ridge regression")
        return out
