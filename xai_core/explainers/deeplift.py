"""DeepLIFT (Rescale rule), on every activation call."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import register
from ._layers import probe_images
from ._rules import rule_gradients, uncovered_operations
from .base import Explainer


def _listing(found: dict[str, list[str]], per_kind: int = 3) -> str:
    """"layer_norm (7 modules: norm1, …), softmax attention (blocks.0.attn, …)"."""
    parts = []
    for kind, names in found.items():
        shown = ", ".join(names[:per_kind]) + (", …" if len(names) > per_kind else "")
        parts.append(f"{kind} ({len(names)} module{'s' if len(names) > 1 else ''}: {shown})")
    return "; ".join(parts)


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
    Σ attr = F(x) − F(x') holds on networks of linear layers, element-wise activations
    (ReLU family, GELU, SiLU, sigmoid, tanh…), max-pooling and residual additions; the relative
    error of each map is recorded as ``completeness_error``.

    The Rescale rule has nothing to say about LayerNorm (and other normalisations by the
    activations' own statistics), softmax attention, products of two activations
    (gates, attention) or divisions by one: through them the multipliers are plain gradients
    and completeness fails by hundreds of per cent (measured on ViT and ConvNeXt nets). A
    model that computes any of them is refused up front with one line naming the modules,
    unless ``allow_unsupported: true`` (then each map's completeness error flags it).
    """

    name = "deeplift"
    display_name = "DeepLIFT"
    paper = "Shrikumar et al. 2017, arXiv:1704.02685"
    needs_python_forward = True

    @dataclass(frozen=True)
    class Params:
        baseline: float = 0.0
        allow_unsupported: bool = False

    def passes_per_pair(self, image_shape) -> int:
        return 2  # input and baseline through the rules

    def unsupported(self, model, image_shape: tuple[int, ...]) -> dict[str, list[str]]:
        """{kind: module names} the rules do not cover, from one probe pass (cached)."""
        return self.cached("_uncovered", (id(model.net), tuple(image_shape)), lambda: uncovered_operations(
            model.module, model.net, probe_images(model.net, image_shape)))

    def check_model(self, model) -> None:
        super().check_model(model)
        shape = self.probe_shape(model)
        found = self.unsupported(model, shape) if shape is not None else {}
        if found and not self.params.allow_unsupported:
            raise self.error(
                f"its Rescale rule does not cover {_listing(found)}, so its maps would break completeness "
                "(Σ attributions ≠ F(x) − F(baseline)); use integrated_gradients, or set allow_unsupported: true "
                "to compute them anyway (each map's completeness error is reported)")

    @property
    def resolved(self) -> dict | None:
        cache = getattr(self, "_uncovered", None)
        return {"unsupported": cache[1]} if cache and cache[1] else None

    def attribute(self, model, images, targets):
        ref = torch.full_like(images, self.params.baseline)
        grad, _hits, logits = rule_gradients(model, images, targets, "rescale", references=ref)
        attr = grad * (images.detach() - ref)
        n = images.shape[0]
        gap = (logits[:n] - logits[n:]).gather(1, targets.view(-1, 1)).view(-1)
        err = (attr.flatten(1).sum(1) - gap).abs() / gap.abs().clamp_min(1e-6)
        self.record("completeness_error", err)
        return attr
