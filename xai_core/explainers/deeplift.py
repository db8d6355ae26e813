"""DeepLIFT (Rescale rule), on every activation call."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from ._rules import rule_gradients
from .base import Explainer


@register
class DeepLIFT(Explainer):
    """(x − x') ⊙ multipliers, with DeepLIFT's Rescale rule Δy/Δx at every non-linearity.

    Shrikumar, Greenside & Kundaje, "Learning Important Features Through Propagating
    Activation Differences", ICML 2017, §3.5.1 (Rescale) — Captum's ``DeepLift`` semantics,
    reference = a constant image (0 = black), summed over channels; equal to Captum on
    conv/BN/ReLU/average-pool networks. Captum installs the rule with per-module hooks that
    store one input per module, so a module called twice per pass (EfficientNet-Lite reuses its
    ReLU6) gets the wrong reference, and its max-pool rule after a ReLU loses part of Δ; both
    break summation-to-delta. Here the rules are attached at each call (``_rules.py``), and
    Σ attr = F(x) − F(x') holds on ReLU/ReLU6/max-pool/residual networks; the mean relative
    error is ``diagnostics["completeness_error"]``.
    """

    name = "deeplift"
    display_name = "DeepLIFT"
    paper = "Shrikumar et al. 2017, arXiv:1704.02685"
    needs_python_forward = True

    @dataclass(frozen=True)
    class Params:
        baseline: float = 0.0

    def attribute(self, model, images, targets):
        ref = torch.full_like(images, self.params.baseline)
        grad, _hits, logits = rule_gradients(model, images, targets, "rescale", references=ref)
        attr = grad * (images.detach() - ref)
        n = images.shape[0]
        gap = (logits[:n] - logits[n:]).gather(1, targets.view(-1, 1)).view(-1)
        err = (attr.flatten(1).sum(1) - gap).abs() / gap.abs().clamp_min(1e-6)
        self.record("completeness_error", err)
        return attr
