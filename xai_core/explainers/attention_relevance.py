"""Gradient-weighted attention relevance."""

from __future__ import annotations

import torch

from . import register
from ._attention import AttentionExplainer, identity_like


@register
class AttentionRelevance(AttentionExplainer):
    """Class-specific relevance propagated through the attention layers, weighted by gradients.

    Chefer, Gur & Wolf, "Generic Attention-model Explainability for Interpreting Bi-Modal and
    Encoder-Decoder Transformers", ICCV 2021, eqs. (5)–(6) — the simpler follow-up of their
    "Transformer Interpretability Beyond Attention Visualization" (CVPR 2021): for every
    self-attention layer, in forward order, Ā = E_heads[(∇A ⊙ A)⁺] with ∇A = ∂ logit_target / ∂A,
    and R ← R + Ā · R from R = I. The map is the output token's row of R over the patch grid
    (see ``_attention.AttentionExplainer``), upsampled bilinearly. Same models and hook point
    as ``attention_rollout``.
    """

    name = "attention_relevance"
    display_name = "Attention relevance (grad-weighted)"
    paper = "Chefer et al. 2021, arXiv:2103.15679"

    def relevance(self, probs, logits, targets):
        grads = torch.autograd.grad(logits.gather(1, targets.view(-1, 1)).sum(), probs, allow_unused=True)
        r = None
        for a, g in zip(probs, grads):
            a = a.detach().double()
            g = torch.zeros_like(a) if g is None else g.double()
            cam = (g * a).clamp_min(0).mean(dim=1)
            r = identity_like(a) if r is None else r
            r = r + cam @ r
        return r
