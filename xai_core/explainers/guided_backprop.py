"""Guided Backpropagation, on every ReLU-family activation (module or functional)."""

from __future__ import annotations

import torch

from . import register
from ._rules import pearson, plain_gradients, rule_gradients
from .base import Explainer


@register
class GuidedBackprop(Explainer):
    """Gradient in which every rectifier passes back only positive signal where it was active.

    Springenberg et al., "Striving for Simplicity: The All Convolutional Net", ICLR 2015
    workshop, §3.4 (Fig. 1). Unlike Captum's, the rule is applied to *every* ReLU-family
    activation — nn.ReLU, ReLU6, LeakyReLU, functional ``F.relu``/``torch.relu``, reused
    modules — and SiLU/GELU are treated as the ReLU they smooth (rules in ``_rules.py``).
    A model whose forward calls none of them (e.g. TorchScript) is refused rather than
    silently explained with plain gradients. Maximum of |·| over colour channels.

    The rule may be applied and still change little: in a transformer most of the gradient
    bypasses the MLPs' GELUs through the residual stream and the attention. Each map records
    ``gradient_correlation``, the Pearson r of the raw (C, H, W) attribution with the plain
    gradient (one more backward pass); a run flags maps above the threshold of
    ``xai_core/axioms.py`` — a guided map equal to the gradient means the rule never acted.
    """

    name = "guided_backprop"
    display_name = "Guided Backprop"
    paper = "Springenberg et al. 2015, arXiv:1412.6806"
    needs_python_forward = True
    signed = False
    channel_reduction = "max_abs"
    rule = "guided"


    def passes_per_pair(self, image_shape) -> int:
        return 2  # the guided pass and the plain gradient (gradient_correlation)

    def rule_gradients(self, model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P, C, H, W) gradients under this class's backward rule."""
        grad, hits, _ = rule_gradients(model, images, targets, self.rule)
        if not (hits["rectifier"] or hits["gated"]):
            raise self.error(
                "the forward pass called no ReLU-family activation that could be intercepted "
                "(TorchScript models run outside Python); the map would equal the plain gradient — "
                "use `gradient` or load the model from a Python factory"
            )
        self.record("gradient_correlation", pearson(grad, plain_gradients(model, images, targets)))
        return grad

    def attribute(self, model, images, targets):
        return self.rule_gradients(model, images, targets)
