"""RISE: randomized input sampling, batched over images, labels and shared masks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..rounding import within_rounding
from . import register
from ._perturbation import PerturbationExplainer, check_output
from .base import to_device

MASK_CHUNK = 256  # masks generated at a time; fixed so that masks never depend on batch size


def auto_grid(side: int) -> int:
    """Cells per side: 7, the paper's ImageNet setting (ANCHORS: 7–8), so that a cell covers the
    same fraction of any image; fewer on images under 28 px, keeping cells ≥ 4 px wide."""
    return max(2, min(7, side // 4))


def rise_masks(seed: int, chunk: int, n: int, height: int, width: int, grid: int, keep: float) -> torch.Tensor:
    """Masks ``chunk·MASK_CHUNK`` … +n as (n, 1, H, W) float32 in [0, 1].

    Petsiuk et al. 2018, §3.2: a grid×grid binary grid with P(1) = keep, bilinearly upsampled
    to (grid + 1)·cell and cropped with a random shift of up to one cell. Seeded by (seed,
    chunk), so every image of every call sees the same masks.
    """
    g = torch.Generator().manual_seed(seed * 1_000_003 + chunk)
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    cells = (torch.rand(n, 1, grid, grid, generator=g) < keep).float()
    up = F.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear",
                       align_corners=False)
    dy = torch.randint(cell_h, (n,), generator=g).tolist()
    dx = torch.randint(cell_w, (n,), generator=g).tolist()
    return torch.stack([up[i, :, y:y + height, x:x + width] for i, (y, x) in enumerate(zip(dy, dx))])


@register
class RISE(PerturbationExplainer):
    """Σ_i F(x ⊙ M_i) M_i / (N·p) over random smooth masks M_i, mean score subtracted.

    Petsiuk, Das & Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018, eq. (6). ``masks`` N (ANCHORS: 4000–8000), ``grid`` cells per side
    (0 = auto, see :func:`auto_grid`), ``keep`` p. With ``center`` the mean score over the
    masks is subtracted first: this removes the constant offset E[F]·mean(M)/p, which carries
    no spatial information but would otherwise dominate the map's mass. Masks come from
    ``seed`` and are shared by all images; each forward pass returns every class, so all labels
    of an image share the N passes. A label whose scores no mask changes beyond rounding
    (:mod:`xai_core.rounding`) gets a map of exactly 0 (centred), not the rounding of the sums.
    """

    name = "rise"
    display_name = "RISE"
    paper = "Petsiuk et al. 2018, arXiv:1806.07421"
    signed = False
    smoke_params = {"masks": 16}

    @dataclass(frozen=True)
    class Params:
        masks: int = 4000
        grid: int = 0
        keep: float = 0.5
        fill: float = 0.0
        center: bool = True
        seed: int = 0
        output: str = "prob"

        def check(self):
            if self.masks < 1:
                return f"masks is {self.masks}; expected ≥ 1"
            if self.grid < 0:
                return f"grid is {self.grid}; expected ≥ 1 (or 0 = auto)"
            if not 0.0 < self.keep < 1.0:
                return f"keep is {self.keep}; expected a probability in (0, 1)"
            return check_output(self.output)

    def passes_per_explained_image(self, image_shape) -> int:
        return self.params.masks

    def attribute_grouped(self, model, images, targets):
        p = self.params
        n, c, h, w = images.shape
        grid = p.grid or auto_grid(min(h, w))
        todo = [i for i, t in enumerate(targets) if t]
        dev = images.device
        lab = {i: torch.as_tensor(targets[i], device=dev) for i in todo}
        weighted = {i: torch.zeros(len(targets[i]), h * w, dtype=torch.float64, device=dev) for i in todo}
        score_sum = {i: torch.zeros(len(targets[i]), dtype=torch.float64, device=dev) for i in todo}
        lo = {i: torch.full((len(targets[i]),), math.inf, dtype=torch.float64, device=dev) for i in todo}
        hi = {i: -lo[i] for i in todo}
        mask_sum = torch.zeros(h * w, dtype=torch.float64, device=dev)
        for k, start in enumerate(range(0, p.masks, MASK_CHUNK)):
            # Drawn on the CPU (the same masks on every device), moved once per chunk.
            masks = to_device(rise_masks(p.seed, k, min(MASK_CHUNK, p.masks - start), h, w, grid, p.keep), dev)
            flat = masks.view(masks.shape[0], -1).double()
            mask_sum += flat.sum(0)
            for i in todo:
                x = images[i] * masks + p.fill * (1.0 - masks)
                s = self.scores(model, x)[:, lab[i]].double()  # (M, L)
                weighted[i] += s.T @ flat
                score_sum[i] += s.sum(0)
                lo[i], hi[i] = torch.minimum(lo[i], s.min(0).values), torch.maximum(hi[i], s.max(0).values)
        out = []
        for i, t in enumerate(targets):
            if not t:
                out.append(torch.zeros(0, h, w, device=dev))
                continue
            sal = weighted[i]
            if p.center:
                sal = sal - (score_sum[i] / p.masks).view(-1, 1) * mask_sum.view(1, -1)
                # Scores no mask moved beyond rounding (xai_core/rounding.py): nothing to paint.
                sal[within_rounding(hi[i] - lo[i], torch.maximum(lo[i].abs(), hi[i].abs()), p.output)] = 0.0
            out.append((sal / (p.masks * p.keep)).float().view(-1, h, w))
        return out
