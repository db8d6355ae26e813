"""Guided Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass

from . import register
from .gradcam import GradCAM
from .guided_backprop import GuidedBackprop


@register
class GuidedGradCAM(GradCAM):
    """Guided Backprop ⊙ upsampled Grad-CAM: fine-grained and class-discriminative.

    Selvaraju et al., "Grad-CAM", ICCV 2017, §3.1 ("Guided Grad-CAM"). Guided Backprop here
    acts on every ReLU-family activation (see ``guided_backprop``; its ``gradient_correlation``
    is recorded per map); ``layer`` as in Grad-CAM.
    Maximum of |·| over colour channels.
    """

    name = "guided_gradcam"
    display_name = "Guided Grad-CAM"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391"
    channel_reduction = "max_abs"
    rule = "guided"  # GuidedBackprop.rule_gradients reads it (and records gradient_correlation here)

    @dataclass(frozen=True)
    class Params:
        layer: str = ""

    def passes_per_pair(self, image_shape) -> int:
        return 3  # Grad-CAM, guided backprop and the plain gradient

    def attribute(self, model, images, targets):
        guided = GuidedBackprop.rule_gradients(self, model, images, targets)
        cam = self.cam(model, images, targets)
        return guided * cam.unsqueeze(1)
