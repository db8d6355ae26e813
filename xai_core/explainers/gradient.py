"""Gradient (vanilla saliency)."""

from __future__ import annotations

import torch

from . import register
from .base import Explainer


@register
class Gradient(Explainer):
    """|∂ logit / ∂ x|, maximum over colour channels.

    Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks" (2014), eq. (2)
    and §3.1 (the max over channels). Unsigned by definition.
    """

    name = "gradient"
    display_name = "Gradient"
    paper = "Simonyan et al. 2014, arXiv:1312.6034"
    signed = False
    channel_reduction = "max_abs"

    def attribute(self, model, images, targets):
        images.requires_grad_(True)
        logits = model(images)
        sel = logits.gather(1, targets.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(sel, images)
        return grad
