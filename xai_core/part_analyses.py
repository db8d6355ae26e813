"""The analyses a part runs beside its maps and scores (:func:`xai_core.engine.compute_part`):
MC-dropout / TTA uncertainty of the probabilities and the counterfactual search. ``ctx`` is the
run's :class:`~xai_core.engine.RunContext`.
"""

from __future__ import annotations

import numpy as np
import torch


def uncertainty_of(ctx, part: int, pixels: torch.Tensor, probs: np.ndarray):
    """MC-dropout / TTA uncertainty of a part's probabilities (None when off), seeded per part."""
    spec = ctx.config.uncertainty
    if not spec.enabled:
        return None
    from .uncertainty import mc_dropout

    return mc_dropout(ctx.model, pixels, passes=spec.passes, dropout=spec.dropout,
                      tta_shift=spec.tta_shift, tta_noise=spec.tta_noise,
                      seed=ctx.config.seed * 1_000_003 + part, batch_size=ctx.batch_size,
                      probs=probs)


def counterfactuals_of(ctx, batch, pixels: torch.Tensor, chosen, probs: np.ndarray) -> dict | None:
    """Rows of the counterfactuals table for labels above the threshold (None when off)."""
    spec, cfg = ctx.config.counterfactual, ctx.config
    if not spec.enabled:
        return None
    from .counterfactual import hierarchical_occlusion

    keep = cfg.labels.keep_threshold
    targets = [[r.label for r in labs if r.prob >= keep] for labs in chosen]
    found = hierarchical_occlusion(ctx.model, pixels, targets, threshold=keep,
                                   layers=spec.layers, batch_size=ctx.batch_size,
                                   probs=torch.from_numpy(probs))
    out = {k: [] for k in ("sample_index", "label", "layer", "side", "prob", "boxes")}
    for i, per_image in enumerate(found):
        for cf in per_image:
            for depth, layer in enumerate(cf.layers if cf is not None else []):
                out["sample_index"].append(batch.indices[i])
                out["label"].append(cf.label)
                out["layer"].append(depth)
                out["side"].append(int(layer["side"]))
                out["prob"].append(float(layer["prob"]))
                out["boxes"].append([[float(v) for v in b] for b in layer["boxes"]])
    return out
