"""Grad-CAM, and the CAM pipeline the other CAM methods reuse."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from ._layers import LayerCapture, LayerChoice, last_spatial_layer, resolve_layer
from .base import Explainer


@register
class GradCAM(Explainer):
    """ReLU(Σ_k α_k A^k) with α_k the spatial mean of ∂ logit / ∂ A^k, upsampled bilinearly.

    Selvaraju et al., "Grad-CAM", ICCV 2017, eqs. (1)–(2). ``layer`` names a module of the
    user's network (as in ``named_modules()``); empty picks automatically the module call that
    finishes last with a spatial output (see ``_layers.last_spatial_layer``): the last conv
    stage of a plain CNN, the last residual stage of a ResNet, the head activation of
    EfficientNet. Subclasses change :meth:`channel_weights` only. ``relu=False`` keeps the
    negative evidence of eq. (2): such an instance is signed (:attr:`is_signed`).
    """

    name = "gradcam"
    display_name = "Grad-CAM"
    paper = "Selvaraju et al. 2017, arXiv:1610.02391"
    needs_python_forward = True
    signed = False
    channel_reduction = "none"

    @dataclass(frozen=True)
    class Params:
        layer: str = ""
        relu: bool = True

    @property
    def is_signed(self) -> bool:
        # Without the final ReLU the map keeps the negative evidence of eq. (2).
        return super().is_signed or not getattr(self.params, "relu", True)

    def layer_choice(self, model, image_shape: tuple[int, ...]) -> LayerChoice:
        """The layer to read, resolved once per (network, input shape)."""
        key = (id(model.net), tuple(image_shape))
        cache = getattr(self, "_layer_cache", None)
        if cache is None or cache[0] != key:
            if self.params.layer:
                choice = resolve_layer(model.net, self.params.layer)
            else:
                choice = last_spatial_layer(model.net, tuple(image_shape))
            self._layer_cache = cache = (key, choice)
        return cache[1]

    @property
    def resolved_layer(self) -> str | None:
        """Name of the layer the last call used (useful when ``layer`` was automatic)."""
        cache = getattr(self, "_layer_cache", None)
        return cache[1].name if cache else None

    def activations_and_grads(self, model, images, targets):
        """(A, ∂logit/∂A) at the chosen layer, both (P, K, h, w) float32."""
        choice = self.layer_choice(model, images.shape[1:])
        with LayerCapture(choice) as cap:
            logits = model(images)
        act = cap.output
        if not isinstance(act, torch.Tensor) or act.ndim != 4:
            raise self.error(f"layer {choice.name!r} returned {type(act).__name__} "
                             f"{tuple(getattr(act, 'shape', ()))}; expected a (N, C, h, w) map")
        (grad,) = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), act)
        return act, grad

    def channel_weights(self, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """α (P, K, 1, 1): Grad-CAM's eq. (1), global-average-pooled gradients."""
        return grad.mean(dim=(2, 3), keepdim=True)

    def cam(self, model, images, targets) -> torch.Tensor:
        """The class activation map (P, H, W), upsampled to the image size."""
        images.requires_grad_(True)
        act, grad = self.activations_and_grads(model, images, targets)
        cam = (self.channel_weights(act.detach(), grad) * act.detach()).sum(dim=1, keepdim=True)
        if getattr(self.params, "relu", True):
            cam = F.relu(cam)
        return F.interpolate(cam, size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0]

    def attribute(self, model, images, targets):
        return self.cam(model, images, targets)
