"""Real timm and transformers classes (tiny random-weight configs, tests/explainers/real_archs.py):
every explainer either agrees with an independent computation — captum's Saliency,
pytorch-grad-cam with its documented ``reshape_transform``, a rollout / Chefer relevance written
here from the attention the libraries themselves expose — or is refused with one line. Also: the
model says its prefix and grid, the readout rows come from the gradient probe, and the switches
(timm's fused_attn, transformers' attention implementation) are restored, also on error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from real_archs import ARCHS, CLASSES, SIDE, handle, timm  # timm first: it makes torchvision importable
from captum.attr import Saliency
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from test_architectures import refusal
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._attention import AttentionRecorder
from xai_core.explainers._layers import token_grid
from xai_core.explainers._rules import pearson
from xai_core.explainers._tokens import grid_warning

ATTENTION = ("attention_rollout", "attention_relevance")
#: Where the attention explainers run (the rest refuse them with one line).
ATTENTION_RUNS = {"timm_vit", "timm_deit_distilled", "timm_vit_reg4", "timm_vit_reg4_gap", "hf_vit_eager",
                  "hf_vit_sdpa", "hf_deit_distilled", "hf_beit", "hf_dinov2_reg4"}
#: Prefix tokens (class, distillation, registers) where not 1, and the mean-pooled heads.
PREFIX = {"timm_deit_distilled": 2, "timm_vit_reg4": 5, "timm_vit_reg4_gap": 4, "hf_deit_distilled": 2,
          "hf_dinov2_reg4": 5}
MEAN_POOLED = {"timm_vit_reg4_gap", "hf_beit"}  # BEiT's classifier averages the patch tokens


@pytest.fixture(scope="module")
def models():
    return {a: handle(a) for a in ARCHS}


def _x(n=2, seed=3):
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(seed))


class _Logits(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return getattr(out, "logits", out)


def _r(a, b) -> float:
    return float(pearson(torch.as_tensor(np.asarray(a)).double().flatten(1),
                         torch.as_tensor(np.asarray(b)).double().flatten(1)).min())


@pytest.mark.parametrize("arch", list(ARCHS))
def test_gradient_equals_captum_saliency(arch, models):
    x, t = _x(), torch.tensor([1, 3])
    ours = EXPLAINERS.get("gradient")().explain(models[arch], x, t.tolist())
    ref = Saliency(_Logits(models[arch].net)).attribute(x.clone().requires_grad_(True), target=t, abs=True).amax(1)
    assert _r(ours, ref) > 0.9999, arch


def _reshape(layout):
    def fn(t):
        t = t[0] if isinstance(t, tuple) else t
        if layout["layout"] == "nhwc":
            return t.permute(0, 3, 1, 2)
        if layout["layout"] == "nchw":
            return t
        h, w = layout["grid"]
        return t[:, layout["prefix_tokens"]:].reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)
    return fn


@pytest.mark.parametrize("arch", list(ARCHS))
def test_gradcam_equals_pytorch_grad_cam(arch, models):
    """pytorch-grad-cam on the layer we resolved, with its documented reshape_transform (drop the
    prefix tokens, reshape to the grid; Swin's (N, H, W, C) permuted)."""
    x, t = _x(), [1, 3]
    exp = EXPLAINERS.get("gradcam")()
    ours = exp.explain(models[arch], x, t)
    res = exp.resolved
    assert res["layer"] != "norm_pre"  # timm ConvNeXt: the nn.Identity is skipped
    net = models[arch].net
    layer = dict(net.named_modules())[res["layer"]]
    # A stage returning a tuple (HF Swin: hidden states, pre-downsampling states…): pytorch-grad-cam
    # hooks tensors, so its first element is routed through an identity "tap" it can hook.
    tap = nn.Identity()
    handle_ = layer.register_forward_hook(lambda _m, _i, o: (tap(o[0]), *o[1:]) if isinstance(o, tuple) else None)
    target = tap if arch == "hf_swin" else layer
    try:
        with GradCAM(model=_Logits(net), target_layers=[target], reshape_transform=_reshape(res)) as cam:
            ref = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(k) for k in t])
    finally:
        handle_.remove()
    assert _r(ours, ref) > 0.999, (arch, res)


def _library_attention(arch, net, x):
    """(probabilities per layer, logits) from what the library itself exposes: timm with
    fused_attn set False by hand and hooks on ``attn_drop``; transformers' ``output_attentions``
    under its eager implementation."""
    if arch.startswith("hf_"):
        before = net.config._attn_implementation
        net.set_attn_implementation("eager")
        try:
            out = net(x, output_attentions=True)
        finally:
            net.set_attn_implementation(before)
        return list(out.attentions), out.logits
    probs, mods = [], [m for n, m in net.named_modules() if n.endswith("attn.attn_drop")]
    fused = [m for m in net.modules() if hasattr(m, "fused_attn")]
    for m in fused:
        m.fused_attn = False
    handles = [m.register_forward_hook(lambda _m, _i, o: probs.append(o)) for m in mods]
    try:
        logits = net(x)
    finally:
        for h in handles:
            h.remove()
        for m in fused:
            m.fused_attn = True
    return probs, logits


def _reference(kind, probs, logits, t):
    eye = torch.eye(probs[0].shape[-1], dtype=torch.float64)
    r = eye.expand(probs[0].shape[0], -1, -1)
    if kind == "attention_rollout":
        for a in probs:
            s = 0.5 * a.detach().double().mean(1) + 0.5 * eye
            r = (s / s.sum(-1, keepdim=True)) @ r
        return r
    grads = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), probs)
    for a, g in zip(probs, grads):
        r = r + (g.double() * a.detach().double()).clamp_min(0).mean(1) @ r
    return r


@pytest.mark.parametrize("kind", ATTENTION)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_attention_equals_a_reference_from_the_library_or_is_refused(arch, kind, models):
    exp = EXPLAINERS.get(kind)()
    why = refusal(EXPLAINERS.get(kind), models[arch])
    if arch not in ATTENTION_RUNS:
        assert why is not None and "\n" not in why, arch
        return
    assert why is None, why
    x, t = _x(), torch.tensor([1, 3])
    row = exp.token_relevance(models[arch], x.clone(), t)
    res = exp.resolved
    probs, logits = _library_attention(arch, models[arch].net, x.clone().requires_grad_(True))
    r = _reference(kind, probs, logits, t)
    p = res["prefix_tokens"]
    want = r[:, 0] if res["token"] == "cls" else r[:, p:].mean(1)
    torch.testing.assert_close(row, want, atol=1e-6, rtol=1e-5)
    assert res["grid"] == [4, 4] and p == PREFIX.get(arch, 1)
    assert res["token"] == ("mean" if arch in MEAN_POOLED else "cls"), res
    assert "inferred" not in res["grid_source"] and "warning" not in res


def test_switches_are_restored_also_on_error(models):
    for arch in ("timm_vit", "hf_vit_sdpa"):
        net = models[arch].net
        rec = AttentionRecorder(net)
        with pytest.raises(ZeroDivisionError):
            with rec:
                assert all(not m.fused_attn for m in net.modules() if hasattr(m, "fused_attn"))
                if arch.startswith("hf_"):
                    assert net.config._attn_implementation == "xai_record"
                1 / 0
        assert all(m.fused_attn for m in net.modules() if hasattr(m, "fused_attn"))
        if arch.startswith("hf_"):
            assert net.config._attn_implementation == "sdpa"
    exp = EXPLAINERS.get("attention_rollout")()
    exp.check_model(models["timm_vit"])
    assert exp.resolved["fused_attn_off"] == 2


def test_mean_pooled_head_reads_the_patch_rows_and_token_still_overrides():
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIDE, patch_size=8, embed_dim=32,
                            depth=1, num_heads=2, num_classes=CLASSES, global_pool="avg").eval()
    h = handle.__globals__["make_handle"](net, size=SIDE, classes=CLASSES)
    auto, cls = EXPLAINERS.get("attention_relevance")(), EXPLAINERS.get("attention_relevance")({"token": "cls"})
    auto.check_model(h)
    cls.check_model(h)
    assert auto.resolved["token"] == "mean" and auto.resolved["readout"]["rows"] == "mean of the 16 patch rows"
    assert "gradient probe" in auto.resolved["readout"]["rule"]
    assert cls.resolved["token"] == "cls" and cls.resolved["readout"]["rule"] == "set (token:)"


def test_grid_and_prefix_from_the_model_and_the_inference_fallback():
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=96, patch_size=16, embed_dim=32,
                            depth=1, num_heads=2, num_classes=CLASSES, reg_tokens=8).eval()
    h = handle.__globals__["make_handle"](net, size=96, classes=CLASSES)
    for name in ("gradcam", "attention_rollout"):
        exp = EXPLAINERS.get(name)()
        exp.check_model(h)
        assert (exp.resolved["prefix_tokens"], exp.resolved["grid"]) == (9, [6, 6]), exp.resolved
        assert exp.resolved["grid_source"].startswith("timm num_prefix_tokens")
    # Without the model's word: a grid of exactly the image's ratio first, and a warning otherwise.
    assert token_grid(45, (96, 96)) == (9, (6, 6)) and grid_warning(45, (96, 96), (9, (6, 6))) is None
    found = token_grid(16 * 16 + 17, (256, 256))
    assert found == (1, (16, 17))
    line = grid_warning(273, (256, 256), found)
    assert "1 + 16×17 by inference" in line and "square 256×256" in line and "\n" not in line


def test_readme_timm_and_transformers_columns_match_what_the_explainers_do(models):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from test_readme_models import table

    columns, rows = table()
    wrong = []
    for col, arch in (("timm", "timm_vit"), ("transformers", "hf_vit_sdpa")):
        for c in EXPLAINERS:
            runs = refusal(c, models[arch]) is None
            if rows[c.name][columns.index(col)] != runs:
                wrong.append(f"{c.name} on {arch}: README says {'✗' if runs else '✓'}, it {'runs' if runs else 'is refused'}")
    assert not wrong, wrong


class _Uncalled(nn.Module):
    """An ``attn_drop`` hook point the forward never calls (attention by a fused kernel)."""

    def __init__(self):
        super().__init__()
        self.attn_drop = nn.Dropout(0.0)
        self.embed = nn.Conv2d(3, 8, 8, 8)
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)                          # (N, 16, 8)
        t = torch.nn.functional.scaled_dot_product_attention(t[:, None], t[:, None], t[:, None])[:, 0]
        return self.head(t.mean(1))


def test_the_refusal_says_why_the_attention_modules_were_not_called():
    why = refusal(EXPLAINERS.get("attention_rollout"), handle.__globals__["make_handle"](_Uncalled(), size=SIDE,
                                                                                         classes=CLASSES))
    assert "were not called" in why and "fused kernel such as F.scaled_dot_product_attention" in why
    assert "\n" not in why


def test_an_inferred_grid_warning_is_a_run_warning():
    from xai_core.axioms import warnings

    out = warnings({}, [{"name": "gradcam", "resolved": {"warning": "273 tokens read as 1 + 16×17 by inference"}}])
    assert out == {"gradcam": ["gradcam: 273 tokens read as 1 + 16×17 by inference"]}


def test_dynamic_img_size_grid_comes_from_the_image_over_the_patch_size():
    from xai_core.explainers._tokens import declared_tokens

    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIDE, patch_size=8, embed_dim=32,
                            depth=1, num_heads=2, num_classes=CLASSES, reg_tokens=2, dynamic_img_size=True).eval()
    d = declared_tokens(net, (48, 32))
    assert (d.prefix, d.grid) == (3, (6, 4)) and "dynamic_img_size" in d.source
    h = handle.__globals__["make_handle"](net, size=SIDE, classes=CLASSES)
    h.input_size = (48, 32)
    exp = EXPLAINERS.get("attention_rollout")()
    maps = exp.explain(h, torch.rand(2, 3, 48, 32), [0, 1])
    assert maps.shape == (2, 48, 32) and exp.resolved["grid"] == [6, 4] and exp.resolved["prefix_tokens"] == 3
