"""Attention rollout."""

from __future__ import annotations

from dataclasses import dataclass

from . import register
from ._attention import AttentionExplainer, identity_like

HEAD_FUSIONS = ("mean", "max", "min")


@register
class AttentionRollout(AttentionExplainer):
    """The attention flow from the patches to the output token, multiplied through the layers.

    Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020, §3 ("attention
    rollout"): with Ā_l the attention of layer l fused over heads (``head_fusion``: mean, as in
    the paper; max or min), the residual connection is accounted for as
    Ã_l = ½ Ā_l + ½ I (rows re-normalised), and R = Ã_L · … · Ã_1. The map is the output
    token's row of R over the patch grid (see ``_attention.AttentionExplainer``), upsampled
    bilinearly. It needs no gradient and is the same for every label: it shows where the
    model looks, not what speaks for a class. Works on ``nn.MultiheadAttention`` /
    ``nn.TransformerEncoderLayer`` and on hand-written attention through the documented hook
    point (``attn_drop`` or ``xai_attention_probs = True``; ``modules`` to name it).
    """

    name = "attention_rollout"
    display_name = "Attention rollout"
    paper = "Abnar & Zuidema 2020, arXiv:2005.00928"
    needs_gradients = False

    @dataclass(frozen=True)
    class Params(AttentionExplainer.Params):
        head_fusion: str = "mean"

        def check(self):
            if self.head_fusion not in HEAD_FUSIONS:
                return f"head_fusion is {self.head_fusion!r}; expected one of {HEAD_FUSIONS}"
            return super().check()

    def relevance(self, probs, logits, targets):
        fuse = {"mean": lambda a: a.mean(1), "max": lambda a: a.amax(1), "min": lambda a: a.amin(1)}[self.params.head_fusion]
        r = None
        for a in probs:
            a = a.detach().double()
            step = 0.5 * fuse(a) + 0.5 * identity_like(a)
            step = step / step.sum(dim=-1, keepdim=True)
            r = step if r is None else step @ r
        return r
