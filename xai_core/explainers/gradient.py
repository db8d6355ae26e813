"""Gradient (vanilla saliency), Captum's ``Saliency``."""

from __future__ import annotations

from captum.attr import Saliency

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


    def passes_per_pair(self, image_shape) -> int:
        return 1  # one forward + backward pass

    def attribute(self, model, images, targets):
        images.requires_grad_(True)
        model.passes += images.shape[0]
        return Saliency(model.module).attribute(images, target=self.host_targets(targets), abs=False)
