"""Gradient × Input, Captum's ``InputXGradient``."""

from __future__ import annotations

from captum.attr import InputXGradient

from . import register
from .base import Explainer


@register
class GradientXInput(Explainer):
    """x ⊙ ∂ logit / ∂ x, summed over colour channels (signed).

    Shrikumar et al., "Not Just a Black Box" (2016), §2; equals DeepLIFT and ε-LRP on
    piecewise-linear networks with a zero reference (Ancona et al. 2018, Prop. 1–2). Inputs are
    pixels in [0, 1], so "input" is the distance from a black image.
    """

    name = "gradient_x_input"
    display_name = "Gradient × Input"
    paper = "Shrikumar et al. 2016, arXiv:1605.01713"


    def passes_per_pair(self, image_shape) -> int:
        return 1

    def attribute(self, model, images, targets):
        images.requires_grad_(True)
        model.passes += images.shape[0]
        return InputXGradient(model.module).attribute(images, target=self.host_targets(targets))
