"""Attention rollout and gradient-weighted attention relevance: known answers on two-token toys,
agreement with torch's own attention weights on nn.TransformerEncoder, the documented hook
point of hand-written attention, and one-line refusals of models without (image-wide) attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archs import SIDE, hand_vit, images, mobilenet, swin, vit
from handles import make_handle
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError, ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._attention import AttentionRecorder, mha_forward


class TwoTokens(nn.Module):
    """Known answers. Tokens: a class token (1, 0) and one patch token (0, m), m = the image's
    mean pixel (an 8 × 8 patch embedding). ``layers`` attention layers with fixed scores S
    (so A = softmax(S) does not depend on the input), the probabilities through ``attn_drop``
    (the hook point), values = tokens, no residual; logits = W · (output class token).
    ``heads=2`` gives the heads the scores S and Sᵀ-like mirror ``S2``."""

    def __init__(self, layers: int = 1, heads: int = 1, *, cls: bool = True, name: str = "attn_drop", mark=False):
        super().__init__()
        self.embed = nn.Conv2d(3, 1, 8, 8, bias=False)
        nn.init.constant_(self.embed.weight, 1.0 / (3 * 64))
        self.cls = cls
        s1 = [[0.0, math.log(3.0)], [0.0, 0.0]] if cls else [[math.log(3.0), 0.0], [0.0, 0.0]]
        s2 = [[math.log(3.0), 0.0], [0.0, 0.0]]
        self.scores = nn.Parameter(torch.tensor([s1, s2][:heads]))
        self.layers = layers
        probe = nn.Identity()
        if mark:
            probe.xai_attention_probs = True
        self.add_module(name, probe)
        self.probe_name = name
        self.head = nn.Linear(2, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 2.0], [1.0, -1.0]]))

    def forward(self, x):
        m = self.embed(x).flatten(1)                                           # (N, patches)
        n, p = m.shape
        patches = torch.stack([torch.zeros_like(m), m], dim=-1)                 # (N, p, 2)
        cls = torch.tensor([1.0, 0.0]).expand(n, 1, 2)
        t = torch.cat([cls, patches], 1) if self.cls else patches             # (N, T, 2)
        for _ in range(self.layers):
            a = getattr(self, self.probe_name)(self.scores.softmax(-1).expand(n, -1, -1, -1))   # (N, h, T, T)
            t = (a @ t.unsqueeze(1)).mean(1)                                   # heads averaged
        out = t[:, 0] if self.cls else t.mean(1)
        return self.head(out)


def toy(net, side=(8, 8), grid=(1, 1)):
    h = make_handle(net, size=side[0], classes=2)
    h.input_size = side
    h.module.patch_grid = grid
    return h


def test_rollout_known_answers_on_two_tokens():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    # One layer: A = [[1/4, 3/4], [1/2, 1/2]]; Ã = ½A + ½I; the class token's patch entry is 3/8.
    one = EXPLAINERS.get("attention_rollout")()
    rel = one.token_relevance(toy(TwoTokens(1)), x, torch.tensor([0, 1]))
    torch.testing.assert_close(rel, torch.tensor([[0.625, 0.375]] * 2, dtype=torch.float64))
    maps = one.explain(toy(TwoTokens(1)), x, [0, 1])
    torch.testing.assert_close(maps, torch.full((2, 8, 8), 0.375))          # a 1 × 1 grid, upsampled
    # Two layers: R = Ã · Ã, row 0 = [0.625² + 0.375 · 0.25, 0.625 · 0.375 + 0.375 · 0.75].
    two = EXPLAINERS.get("attention_rollout")().token_relevance(toy(TwoTokens(2)), x, torch.tensor([0, 0]))
    torch.testing.assert_close(two[0], torch.tensor([0.484375, 0.515625], dtype=torch.float64))
    # Two heads, A₀ = [1/4, 3/4] and [3/4, 1/4]: mean fusion gives [1/2, 1/2] → 1/4; max fusion
    # gives [3/4, 3/4] → Ã₀ = [7/8, 3/8], re-normalised → 3/10.
    heads = toy(TwoTokens(1, heads=2))
    mean = EXPLAINERS.get("attention_rollout")().token_relevance(heads, x, torch.tensor([0, 0]))
    mx = EXPLAINERS.get("attention_rollout")({"head_fusion": "max"}).token_relevance(heads, x, torch.tensor([0, 0]))
    assert mean[0, 1].item() == pytest.approx(0.25) and mx[0, 1].item() == pytest.approx(0.3)


def test_relevance_known_answer_on_two_tokens():
    """One layer, logit_c = W_c0 · A₀₀ + W_c1 · m · A₀₁, so ∂logit_c/∂A₀₁ = W_c1 · m and the patch's
    relevance R₀₁ = (A₀₁ · W_c1 · m)⁺ = 3/4 · W_c1 · m: 1.5 m for class 0, 0 for class 1 (W₁₁ < 0)."""
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    m = x.mean((1, 2, 3)).double()
    exp = EXPLAINERS.get("attention_relevance")()
    rel = exp.token_relevance(toy(TwoTokens(1)), x, torch.tensor([0, 1]))
    torch.testing.assert_close(rel[:, 1], torch.stack([1.5 * m[0], torch.zeros((), dtype=torch.float64)]))
    torch.testing.assert_close(rel[:, 0], torch.ones(2, dtype=torch.float64) + torch.tensor([0.25, 0.25],
                                                                                              dtype=torch.float64))
    maps = exp.explain(toy(TwoTokens(1)), x, [0, 1])
    torch.testing.assert_close(maps[0], torch.full((8, 8), float(1.5 * m[0])))
    assert maps[1].abs().max() == 0


def test_two_patch_tokens_mean_pooled_with_a_grid_of_one_by_two():
    """No class token: the output is the mean token; two patches of an 8 × 16 image,
    model.patch_grid [1, 2]. Ã = ½A + ½I with A = [[3/4, 1/4], [1/2, 1/2]]: mean rows
    [9/16, 7/16]; the map is that 1 × 2 grid upsampled bilinearly."""
    net = TwoTokens(1, cls=False)
    model = toy(net, side=(8, 16), grid=(1, 2))
    x = torch.rand(1, 3, 8, 16, generator=torch.Generator().manual_seed(2))
    exp = EXPLAINERS.get("attention_rollout")()
    rel = exp.token_relevance(model, x, torch.tensor([0]))
    torch.testing.assert_close(rel[0], torch.tensor([0.5625, 0.4375], dtype=torch.float64))
    maps = exp.explain(model, x, [0])
    grid = torch.tensor([[[[0.5625, 0.4375]]]])
    torch.testing.assert_close(maps, F.interpolate(grid, size=(8, 16), mode="bilinear", align_corners=False)[:, 0])
    assert exp.resolved["token"] == "mean" and exp.resolved["prefix_tokens"] == 0
    with pytest.raises(ExplainerError, match="token: cls, but the 2 tokens have no prefix"):
        EXPLAINERS.get("attention_rollout")({"token": "cls"}).explain(model, x, [0])
    with pytest.raises(ExplainerError, match=r"cannot read 2 tokens as prefix \+ patch grid; set model.patch_grid"):
        EXPLAINERS.get("attention_rollout")().explain(toy(net, side=(8, 16), grid=None), x, [0])


def test_hook_point_by_name_mark_or_pattern():
    x = torch.rand(1, 3, 8, 8)
    named = EXPLAINERS.get("attention_rollout")().explain(toy(TwoTokens(1)), x, [0])
    marked = EXPLAINERS.get("attention_rollout")().explain(toy(TwoTokens(1, name="probs", mark=True)), x, [0])
    torch.testing.assert_close(named, marked)
    hidden = toy(TwoTokens(1, name="probs"))
    with pytest.raises(ExplainerError, match=r"no attention to read: no nn.MultiheadAttention and no hook point"):
        EXPLAINERS.get("attention_rollout")().explain(hidden, x, [0])
    torch.testing.assert_close(EXPLAINERS.get("attention_rollout")({"modules": "prob*"}).explain(hidden, x, [0]), named)


@pytest.mark.parametrize("batch_first", [True, False])
def test_mha_forward_equals_torch(batch_first):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2, batch_first=batch_first).eval()
    sep = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, batch_first=batch_first).eval()
    q = torch.randn(3, 7, 8) if batch_first else torch.randn(7, 3, 8)
    kv = torch.randn(3, 5, 6) if batch_first else torch.randn(5, 3, 6)
    vv = torch.randn(3, 5, 5) if batch_first else torch.randn(5, 3, 5)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, -2:] = True
    causal = torch.ones(7, 7, dtype=torch.bool).triu(1)
    cases = [(mha, (q, q, q), {}), (mha, (q, q, q), {"key_padding_mask": pad, "attn_mask": causal}),
             (mha, (q, q, q), {"attn_mask": torch.randn(7, 7), "average_attn_weights": False}),
             (sep, (q, kv, vv), {}), (mha, (q[:, 0] if not batch_first else q[0],) * 3, {})]
    with torch.no_grad():
        for module, args, kw in cases:
            seen = []
            want_out, want_w = module(*args, need_weights=True, **kw)
            got_out, got_w = mha_forward(module, *args, need_weights=True, record=seen.append, **kw)
            torch.testing.assert_close(got_out, want_out, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got_w, want_w, atol=1e-5, rtol=1e-5)
            assert len(seen) == 1 and seen[0].shape[1] == 2


def test_rollout_on_nn_transformer_encoder_uses_torchs_own_attention():
    """On a ViT built on nn.TransformerEncoder (fused fast path under no_grad), rollout equals
    the formula applied to the weights torch's own modules return (need_weights=True)."""
    net = vit()
    model = make_handle(net, size=SIDE)
    x = images(2)
    got = EXPLAINERS.get("attention_rollout")().token_relevance(model, x, torch.tensor([0, 0]))
    with torch.no_grad():
        t = net.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([net.cls_token.expand(2, -1, -1), t], 1) + net.pos_embed
        r = torch.eye(17, dtype=torch.float64).expand(2, 17, 17)
        for layer in net.encoder.layers:
            h = layer.norm1(t)
            _, w = layer.self_attn(h, h, h, need_weights=True, average_attn_weights=True)
            step = 0.5 * w.double() + 0.5 * torch.eye(17, dtype=torch.float64)
            r = (step / step.sum(-1, keepdim=True)) @ r
            t = layer(t)
    torch.testing.assert_close(got, r[:, 0], atol=1e-5, rtol=1e-5)
    assert torch.backends.mha.get_fastpath_enabled()  # restored after the explanation
    rec = AttentionRecorder(net)
    assert [n for n, _ in rec.mha] == [f"encoder.layers.{i}.self_attn" for i in range(3)]
    assert "forward" not in net.encoder.layers[0].self_attn.__dict__  # the replaced forward is gone


@pytest.mark.parametrize("name", ["attention_rollout", "attention_relevance"])
def test_refusals_are_one_line_and_up_front(name, tmp_path):
    x = images(1)
    with pytest.raises(ExplainerError, match="the model has no attention to read") as e:
        EXPLAINERS.get(name)().check_model(make_handle(mobilenet(), size=SIDE))
    assert "\n" not in str(e.value)
    with pytest.raises(ExplainerError, match=r"'stages.0.0.attn.attn_drop' attends within windows .*Swin-like"):
        EXPLAINERS.get(name)().check_model(make_handle(swin(), size=SIDE))
    cfg = config_from_dict({"model": {"onnx": str(tmp_path / "m.onnx")}, "dataset": {"path": "m.jsonl"},
                            "explainers": [name]})
    from xai_core.engine import check_capabilities

    with pytest.raises(ConfigError, match=rf"explainers \['{name}'\] (need gradients|read layers inside)"):
        check_capabilities(None, cfg, cfg.instantiate()[0])
    # Both work on both ViTs, every map finite; relevance differs between labels, rollout does not.
    for net in (vit(), hand_vit()):
        maps = EXPLAINERS.get(name)().explain(make_handle(net, size=SIDE), images(1).repeat(2, 1, 1, 1), [0, 5])
        assert torch.isfinite(maps).all() and (maps >= 0).all() and maps.abs().sum() > 0
        assert torch.equal(maps[0], maps[1]) == (name == "attention_rollout")
