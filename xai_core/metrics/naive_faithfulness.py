"""Naive Faithfulness (correlation between attribution and probability drop)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import register
from ._curves import pixel_order, ranked_replacement_probs, reference_images
from ._stats import constant_rows, pearson_rows
from .base import Metric, finite_maps


@register
class NaiveFaithfulness(Metric):
    """Pearson correlation between the mean saliency of pixel chunks and the probability drop
    when each chunk alone is removed.

    Alvarez-Melis & Jaakkola, "Towards Robust Interpretability with Self-Explaining Neural
    Networks", NeurIPS 2018 (faithfulness as correlation), in the form of MindSpore's
    ``NaiveFaithfulness``: the top ``fraction`` of pixels by saliency is cut, in rank order,
    into ``chunks`` equal chunks (0 = auto, ⌊√(H·W)⌋); chunk j alone is replaced (not
    cumulatively) by ``fill`` or a blur; raw = Pearson(mean saliency of chunk j,
    p(x) − p(x without chunk j)) ∈ [−1, 1], higher is better. The correlation does not
    depend on p(x), so no pass is spent on it: P × chunks forward passes. A flat map (no
    ranking) or a model whose output no chunk changes scores 0, as in MindSpore.
    Score: (1 + x) / 2.
    """

    name = "naive_faithfulness"
    display_name = "Naive Faithfulness"
    category = "faithfulness"
    higher_is_better = True
    value_range = (-1.0, 1.0)
    needs = frozenset({"activation"})
    paper = "Alvarez-Melis & Jaakkola 2018, arXiv:1806.07538"
    score_mapping = "(1 + x) / 2"

    @dataclass(frozen=True)
    class Params:
        chunks: int = 0
        fraction: float = 0.5
        replace: str = "constant"
        fill: float = 0.0
        blur_sigma: float = 0.0

        def check(self):
            if self.chunks == 1 or self.chunks < 0:
                return f"chunks is {self.chunks}; expected 0 (auto) or ≥ 2"
            if not 0 < self.fraction <= 1:
                return f"fraction is {self.fraction}; expected 0 < fraction ≤ 1"
            if self.replace not in ("constant", "blur"):
                return f"replace is {self.replace!r}; expected 'constant' or 'blur'"
            return None

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        _, h, w = image_shape
        return int(self.chunk_bounds(h * w)[0].shape[0])  # one pass per chunk

    def chunk_bounds(self, n_pix: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(lo, hi) rank bounds of the chunks, each (J,) int64."""
        n_chunks = self.params.chunks or int(math.isqrt(n_pix))
        size = max(1, int(self.params.fraction * n_pix) // n_chunks)
        n_chunks = min(n_chunks, n_pix // size)
        lo = torch.arange(n_chunks) * size
        return lo, lo + size

    def evaluate(self, ctx):
        p = self.params
        sal = ctx.saliency
        n_pix = sal.shape[1] * sal.shape[2]
        lo, hi = self.chunk_bounds(n_pix)
        order = pixel_order(sal, ctx.seed)
        ranked = torch.gather(sal.reshape(len(ctx), -1).double(), 1, order)
        size = int(hi[0] - lo[0])
        importance = ranked[:, : lo.shape[0] * size].reshape(len(ctx), -1, size).mean(dim=2).numpy()
        dest = reference_images(ctx.images, p.replace, p.fill, p.blur_sigma)
        probs = ranked_replacement_probs(ctx.model, ctx.images, dest, order, ctx.targets, lo, hi, ctx.batch_size)
        # corr(s, p0 − p_j) = −corr(s, p_j): p0 is not needed.
        out = -pearson_rows(importance, probs)
        out[constant_rows(importance) | constant_rows(probs)] = 0.0
        out[~finite_maps(sal)] = np.nan
        return out

    def normalise(self, raw):
        return np.clip((np.asarray(raw, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)
