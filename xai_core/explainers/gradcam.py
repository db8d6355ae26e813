"""Grad-CAM, and the CAM pipeline the other CAM methods reuse."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import register
from ._layers import LayerCapture, LayerChoice, first_tensor, last_spatial_layer, layer_layout, no_fast_path, resolve_layer
from ._tokens import grid_hint, layout_note
from ..errors import ExplainerError
from .base import Explainer


@register
class GradCAM(Explainer):
    """ReLU(Σ_k α_k A^k) with α_k the spatial mean of ∂ logit / ∂ A^k, upsampled bilinearly.

    Selvaraju et al., "Grad-CAM", ICCV 2017, eqs. (1)–(2). ``layer`` names a module of the
    user's network (as in ``named_modules()``); empty picks automatically the module call that
    finishes last with a spatial output (see ``_layers.last_spatial_layer``): the last conv
    stage of a plain CNN, the last residual stage of a ResNet, the head activation of
    EfficientNet; on a transformer, the last block whose patch tokens reach the logits (a ViT
    with a class token: the block before the last). Token outputs (N, T, C) / (T, N, C) and
    channels-last maps (N, h, w, C) are read as (N, C, h, w) maps (``_layers.SpatialLayout``;
    the grid is ``model.patch_grid`` or square), so ``layer`` may name any block of a ViT or a
    Swin stage. The layer used and its grid are :attr:`resolved` (the run's manifest records
    them). Subclasses change :meth:`channel_weights` only. ``relu=False`` keeps the negative
    evidence of eq. (2): such an instance is signed (:attr:`is_signed`).
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


    def passes_per_pair(self, image_shape) -> int:
        return 1  # the layer's activations and gradient from one pass

    @property
    def is_signed(self) -> bool:
        # Without the final ReLU the map keeps the negative evidence of eq. (2).
        return super().is_signed or not getattr(self.params, "relu", True)

    def layer_choice(self, model, image_shape: tuple[int, ...]) -> LayerChoice:
        """The layer to read and its layout, resolved once per (network, input shape)."""
        def resolve():
            grid = grid_hint(model, image_shape[1:])
            try:
                if self.params.layer:
                    choice = layer_layout(model.net, resolve_layer(model.net, self.params.layer), tuple(image_shape),
                                          grid, forward=model.module)
                else:
                    choice = last_spatial_layer(model.net, tuple(image_shape), grid, forward=model.module)
            except ExplainerError as e:
                raise self.error(str(e)) from e
            self._layout_note = layout_note(self.name, choice.layout, tuple(image_shape[1:]), grid)
            return choice

        return self.cached("_layer_cache", (id(model.net), tuple(image_shape)), resolve)

    def check_model(self, model) -> None:
        super().check_model(model)
        shape = self.probe_shape(model)
        if shape is not None:
            self.layer_choice(model, shape)  # refuse a bad layer up front

    @property
    def resolved_layer(self) -> str | None:
        """Name of the layer the last call used (useful when ``layer`` was automatic)."""
        cache = getattr(self, "_layer_cache", None)
        return cache[1].name if cache else None

    @property
    def resolved(self) -> dict | None:
        """The layer the last call used and how its output was read: {layer, call, layout,
        grid, prefix_tokens} (manifest ``explainers[].resolved``)."""
        cache = getattr(self, "_layer_cache", None)
        if not cache:
            return None
        return {**cache[1].describe(), **getattr(self, "_layout_note", {})}

    def activations_and_grads(self, model, images, targets):
        """(A, ∂logit/∂A) at the chosen layer, both (P, K, h, w) float32."""
        choice = self.layer_choice(model, images.shape[1:])
        with LayerCapture(choice) as cap, no_fast_path():
            logits = model(images)
        act = first_tensor(cap.output)
        if act is None:
            raise self.error(f"layer {choice.name!r} returned {type(cap.output).__name__}; expected a tensor")
        (grad,) = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), act)
        lay = choice.layout
        try:
            act_map, grad_map = lay.to_nchw(act), lay.to_nchw(grad)
        except (RuntimeError, IndexError) as e:
            raise self.error(f"layer {choice.name!r} returned {tuple(act.shape)}; expected {lay.text()} "
                             f"as in the probe pass ({str(e).splitlines()[0]})") from e
        return act_map, grad_map

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
