"""XRAI: region attribution from Integrated Gradients over Felzenszwalb segments."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from . import register
from ._segments import FELZENSZWALB_SCALES, felzenszwalb_regions
from .base import Explainer, image_digest, scaled, to_device, to_host
from .integrated_gradients import integrated_gradients


def xrai_map(attr: np.ndarray, regions, min_pixel_diff: int, area_threshold: float = 1.0) -> np.ndarray:
    """XRAI's greedy region ranking (Kapishnikov et al. 2019, Algorithm 1, "full" variant of
    PAIR saliency): repeatedly add the region with the highest attribution *density* over its
    not-yet-covered pixels; those pixels get that density. Regions adding fewer than
    ``min_pixel_diff`` new pixels are dropped; pixels never covered get their own density.

    attr: (H·W,) float64; regions: sparse CSC (S, H·W) 0/1. Returns (H·W,) float64. Running
    sums are updated from the newly covered columns only, so the whole loop costs O(nnz).
    """
    csr = regions.tocsr()
    s_sum = np.asarray(regions @ attr).ravel()
    s_cnt = np.asarray(regions.sum(axis=1)).ravel()
    alive = s_cnt >= max(1, min_pixel_diff)
    covered = np.zeros(attr.shape[0], dtype=bool)
    out = np.full(attr.shape[0], np.nan)
    while alive.any() and covered.mean() <= area_threshold:
        dens = np.where(alive, s_sum / np.maximum(s_cnt, 1), -np.inf)
        best = int(np.argmax(dens))
        cols = csr.indices[csr.indptr[best]: csr.indptr[best + 1]]
        new = cols[~covered[cols]]
        out[new] = dens[best]
        covered[new] = True
        alive[best] = False
        sub = regions[:, new]
        s_sum -= np.asarray(sub @ attr[new]).ravel()
        s_cnt -= np.asarray(sub.sum(axis=1)).ravel()
        alive &= s_cnt >= max(1, min_pixel_diff)
    rest = np.isnan(out)
    if rest.any():
        out[rest] = attr[rest].mean()
    return out


@register
class XRAI(Explainer):
    """Regions ranked by Integrated-Gradients density: each pixel holds the mean attribution
    of the region that added it, regions taken greedily by that density.

    Kapishnikov et al., "XRAI: Better Attributions Through Regions", ICCV 2019, §3 —
    IG (Captum) from a black and a white baseline, averaged, max over channels; Felzenszwalb
    segments at scales 50…1200 on the image resized to 224 px, dilated (``dilation`` px, 0 =
    auto: 5 px at 224); ``min_pixel_diff`` = 50 px at 224² scaled by area; ``segment_side`` the
    square the image is resized to for segmentation (PAIR: 224; smaller is faster, coarser).
    The mean IG completeness error is ``diagnostics["completeness_error"]``. Higher = more
    important. Declared unsigned (a ranking of regions), but a density is a mean of signed IG
    attributions, so regions that count against the class are negative: a run records the
    measured sign (``has_negative``, manifest ``signed``; see FORMAT.md).
    """

    name = "xrai"
    display_name = "XRAI"
    paper = "Kapishnikov et al. 2019, arXiv:1906.02825"
    signed = False
    channel_reduction = "none"
    smoke_params = {"steps": 2, "segment_side": 32}

    @dataclass(frozen=True)
    class Params:
        steps: int = 50
        scales: tuple = FELZENSZWALB_SCALES
        dilation: int = 0
        segment_side: int = 224
        area_threshold: float = 1.0

        def check(self):
            if self.steps < 1:
                return f"steps is {self.steps}; expected ≥ 1"
            if not self.scales or any(float(s) <= 0 for s in self.scales):
                return f"scales is {self.scales!r}; expected positive Felzenszwalb scales"
            if self.segment_side < 8:
                return f"segment_side is {self.segment_side}; expected ≥ 8 px"
            if not 0.0 < self.area_threshold <= 1.0:
                return f"area_threshold is {self.area_threshold}; expected in (0, 1]"
            return None

    def passes_per_pair(self, image_shape) -> int:
        return 2 * (self.params.steps + 2)  # IG from a black and from a white baseline

    def regions(self, image: torch.Tensor):
        """Segments of one image, cached by content (labels of one image reuse them)."""
        cache = self.__dict__.setdefault("_region_cache", OrderedDict())
        key = image_digest(image)
        if key not in cache:
            p = self.params
            cache[key] = felzenszwalb_regions(image, tuple(float(s) for s in p.scales), p.dilation, p.segment_side)
            while len(cache) > 64:
                cache.popitem(last=False)
        return cache[key]

    uses_host_pixels = True  # the Felzenszwalb regions are computed on the host

    def attribute(self, model, images, targets):
        p = self.params
        rows = self.forward_batch
        attr = []
        labels = self.host_targets(targets)
        for i in range(images.shape[0]):
            # One pair per IG call: the greedy ranking is discontinuous, so it must not see
            # the float noise of different batch compositions (a batch equals per-image calls).
            x, t = images[i: i + 1], labels[i: i + 1]
            black, err_b = integrated_gradients(model, x, t, 0.0, p.steps, "gausslegendre", rows)
            white, err_w = integrated_gradients(model, x, t, 1.0, p.steps, "gausslegendre", rows)
            self.record("completeness_error", torch.cat([err_b, err_w]))
            attr.append(((black + white) / 2).detach().amax(dim=1)[0])
        if not attr:
            return torch.zeros(0, *images.shape[2:], device=images.device)
        attr = to_host(torch.stack(attr))  # every IG pass done: the greedy ranking is host code
        host = self.host_pixels(images)
        _, h, w = attr.shape
        min_diff = max(1, round(50 * h * w / 224 ** 2))
        out = torch.empty_like(attr)
        for i in range(attr.shape[0]):
            a = attr[i].double().numpy().ravel()
            out[i] = torch.from_numpy(xrai_map(a, self.regions(host[i]), min_diff, p.area_threshold)).view(h, w)
        return to_device(out, images.device)
