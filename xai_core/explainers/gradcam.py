"""Grad-CAM."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from ._layers import last_spatial_layer, resolve_layer
from .base import Explainer


@register
class GradCAM(Explainer):
    """ReLU(Σ_k α_k A^k) with α_k the spatial mean of ∂ logit / ∂ A^k, upsampled bilinearly.

    Selvaraju et al., "Grad-CAM", ICCV 2017, eqs. (1)–(2). ``layer`` names a module of the
    user's network; empty picks the last layer with a spatial output automatically.
    """

    name = "gradcam"
    display_name = "Grad-CAM"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391"
    signed = False
    channel_reduction = "none"

    @dataclass(frozen=True)
    class Params:
        layer: str = ""
        relu: bool = True

    def layer_module(self, model):
        if self.params.layer:
            return self.params.layer, resolve_layer(model.net, self.params.layer)
        cache = getattr(self, "_auto_layer", None)
        if cache is None or cache[0] is not model.net:
            name, mod = last_spatial_layer(model.module, (model.module.mean.shape[1], *model.input_size))
            self._auto_layer = cache = (model.net, name, mod)
        return cache[1], cache[2]

    def activations_and_grads(self, model, images, targets):
        """(A, ∂logit/∂A) at the chosen layer, both (P, K, h, w)."""
        _, layer = self.layer_module(model)
        store = {}

        def hook(_m, _i, out):
            store["a"] = out

        h = layer.register_forward_hook(hook)
        try:
            logits = model(images)
        finally:
            h.remove()
        act = store["a"]
        (grad,) = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), act)
        return act, grad

    def attribute(self, model, images, targets):
        images.requires_grad_(True)
        act, grad = self.activations_and_grads(model, images, targets)
        cam = (grad.mean(dim=(2, 3), keepdim=True) * act).sum(dim=1, keepdim=True)
        if self.params.relu:
            cam = F.relu(cam)
        return F.interpolate(cam, size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0]
