"""Grad-CAM++."""

from __future__ import annotations

import torch

from . import register
from .gradcam import GradCAM


@register
class GradCAMPlusPlus(GradCAM):
    """Grad-CAM with pixel-weighted gradients: α_k = Σ_ij a_ij^k ReLU(∂Y/∂A_ij^k).

    Chattopadhyay et al., "Grad-CAM++", WACV 2018, eqs. (10) and (19): with Y = exp(logit)
    the higher derivatives reduce to powers of the first, a_ij^k = g² / (2g² + Σ_ab A_ab^k g³)
    (the closed form used by pytorch-grad-cam). Same ``layer`` choice as Grad-CAM.
    """

    name = "gradcam_pp"
    display_name = "Grad-CAM++"
    paper = "Chattopadhyay et al. 2018, arXiv:1710.11063"


    def passes_per_pair(self, image_shape) -> int:
        return 1

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        g2 = grad.pow(2)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g2 * grad
        a = torch.where(grad != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), 0.0)
        return (a * grad.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
