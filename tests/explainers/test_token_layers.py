"""The CAM family on transformers: token (N, T, C) / (T, N, C) and channels-last (N, h, w, C)
outputs read as maps, the default layer is a transformer block whose patch tokens reach the
logits (not the patch embedding), any block can be named, and the choice is recorded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from archs import SIDE, convnext, hand_vit, images, mobilenet, swin, vit
from handles import make_handle
from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._layers import (LayerCapture, SpatialLayout, attention_probs_flag, infer_layout,
                                         last_spatial_layer, no_fast_path, resolve_layer, token_grid)


def handle(net, grid=None):
    h = make_handle(net, size=SIDE, classes=10)
    h.module.patch_grid = grid
    return h


@pytest.mark.parametrize("tokens,image,grid,expected", [
    (197, (224, 224), None, (1, (14, 14))),        # ViT-B/16: class token + 14 × 14
    (261, (224, 224), None, (5, (16, 16))),        # DINOv2 with 4 registers
    (49, (224, 224), None, (0, (7, 7))),           # Swin's last stage, no prefix
    (33, (32, 64), None, (1, (4, 8))),             # a non-square image: the grid follows its aspect
    (37, (32, 32), (4, 4), (21, (4, 4))),          # model.patch_grid: a prefix longer than the automatic 16
    (10, (32, 32), (4, 4), None),                  # fewer tokens than the grid
])
def test_token_grid(tokens, image, grid, expected):
    assert token_grid(tokens, image, grid) == expected


def test_layouts_of_module_outputs():
    img = (32, 32)
    assert infer_layout(torch.zeros(2, 16, 8, 8), 2, img) == SpatialLayout("nchw", (8, 8))
    assert infer_layout(torch.zeros(2, 8, 8, 16), 2, img) == SpatialLayout("nhwc", (8, 8))
    assert infer_layout(torch.zeros(2, 17, 32), 2, img) == SpatialLayout("tokens", (4, 4), 1)
    assert infer_layout(torch.zeros(17, 2, 32), 2, img) == SpatialLayout("tokens_tnc", (4, 4), 1)
    assert infer_layout(torch.zeros(8, 16, 32), 2, img) is None          # attention inside 4 windows per image
    assert infer_layout(torch.zeros(2, 32), 2, img) is None              # a vector
    attn = torch.softmax(torch.randn(2, 4, 17, 17), -1)
    assert bool(attention_probs_flag(attn)) and not bool(attention_probs_flag(torch.rand(2, 4, 17, 17) + 1))
    assert infer_layout(attn, 2, img, attention=True) is None            # token × token probabilities, not a map
    t = torch.randn(2, 17, 32)
    torch.testing.assert_close(SpatialLayout("tokens", (4, 4), 1).to_nchw(t),
                               t[:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2))  # pytorch-grad-cam's reshape_transform


@pytest.mark.parametrize("net,layer,layout,prefix", [
    (vit(), "encoder.layers.1", "tokens", 1),                     # class token: the block before the last
    (vit(batch_first=False), "encoder.layers.1", "tokens_tnc", 1),
    (hand_vit(), "blocks.1", "tokens", 1),
    (hand_vit(registers=2), "blocks.1", "tokens", 3),
    (hand_vit(pool="mean"), "blocks.2", "tokens", 0),              # mean-pooled head: the last block
    (swin(), "stages.1", "nhwc", 0),
    (convnext(), "stages", "nchw", 0),
    (mobilenet(), "features", "nchw", 0),
], ids=["vit", "vit_tnc", "hand_vit", "registers", "mean_pool", "swin", "convnext", "mobilenet"])
def test_default_layer_is_a_block_not_the_patch_embedding(net, layer, layout, prefix):
    model = handle(net)
    cam = EXPLAINERS.get("gradcam")()
    maps = cam.explain(model, images(2), [0, 3])
    assert cam.resolved["layer"] == layer and cam.resolved["layout"] == layout
    assert cam.resolved["prefix_tokens"] == prefix
    assert maps.shape == (2, SIDE, SIDE) and torch.isfinite(maps).all()
    signed = EXPLAINERS.get("gradcam")({"relu": False}).explain(model, images(2), [0, 3])
    assert (signed.flatten(1).abs().sum(1) > 0).all(), "a block whose tokens reach the logits gives a non-zero map"


def test_token_cam_equals_the_hand_written_reshape_transform():
    """Grad-CAM at a ViT block equals the recipe of pytorch-grad-cam's ViT tutorial: capture the
    block, drop the class token, reshape to 4 × 4, weight by pooled gradients, upsample."""
    model = handle(hand_vit())
    x, t = images(2), torch.tensor([1, 4])
    block = resolve_layer(model.net, "blocks.0")
    xx = x.clone().requires_grad_(True)
    with LayerCapture(block) as cap:
        logits = model(xx)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), cap.output)

    def reshape(z):
        return z[:, 1:].reshape(2, 4, 4, z.shape[2]).permute(0, 3, 1, 2)

    a, g = reshape(cap.output.detach()), reshape(g)
    cam = torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(SIDE, SIDE), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(EXPLAINERS.get("gradcam")({"layer": "blocks.0"}).explain(model, x, t), expected)


def test_any_block_can_be_named_and_bad_choices_stop_with_one_line():
    model = handle(hand_vit())
    x = images(1)
    for layer in ("blocks.0", "blocks.1", "blocks.1.norm1", "patch_embed"):
        maps = EXPLAINERS.get("gradcam_pp")({"layer": layer}).explain(model, x, [2])
        assert torch.isfinite(maps).all()
    with pytest.raises(ExplainerError, match=r"layer 'blocks.2': its patch tokens do not reach the logits"):
        EXPLAINERS.get("gradcam")({"layer": "blocks.2"}).explain(model, x, [2])
    with pytest.raises(ExplainerError, match=r"returns attention probabilities \(2, 2, 17, 17\).*attention_rollout"):
        EXPLAINERS.get("gradcam")({"layer": "blocks.0.attn.attn_drop"}).explain(model, x, [2])
    with pytest.raises(ExplainerError, match=r"layer 'head' returned \(2, 10\) for 2 images; expected"):
        EXPLAINERS.get("gradcam")({"layer": "head"}).explain(model, x, [2])
    with pytest.raises(ExplainerError, match=r"not a module of the model; .*e.g. the blocks \['blocks.0', 'blocks.1', "
                                             r"'blocks.2'\]"):
        EXPLAINERS.get("gradcam")({"layer": "blocks.9"}).explain(model, x, [2])
    sw = handle(swin())
    for layer in ("stages.0", "stages.1.0", "stages.0.1.attn"):
        cam = EXPLAINERS.get("gradcam")({"layer": layer})
        assert torch.isfinite(cam.explain(sw, x, [0])).all() and cam.resolved["layout"] == "nhwc"
    assert cam.resolved["grid"] == [8, 8]


def test_patch_grid_reads_a_long_prefix_right():
    """21 prefix tokens before 4 × 4 patches: 37 tokens read as 1 + 6 × 6 without
    model.patch_grid, as 21 + 4 × 4 with it."""
    net = hand_vit(registers=20)
    cam = EXPLAINERS.get("gradcam")({"layer": "blocks.0"})
    cam.explain(handle(net), images(1), [0])
    assert cam.resolved["grid"] == [6, 6]
    cam = EXPLAINERS.get("gradcam")({"layer": "blocks.0"})
    cam.explain(handle(net, grid=(4, 4)), images(1), [0])
    assert cam.resolved["grid"] == [4, 4] and cam.resolved["prefix_tokens"] == 21


def test_the_fused_fast_path_is_off_while_probing_and_restored():
    """Under no_grad, nn.TransformerEncoderLayer runs one fused kernel that never calls its
    attention module (torch only keeps the Python path when hooks are attached); the probes and
    the attention recorder switch the fast path off for their pass only."""
    net = vit()
    attn = net.encoder.layers[0].self_attn
    calls = []
    plain = attn.forward
    attn.forward = lambda *a, **k: calls.append(1) or plain(*a, **k)  # an instance attribute, not a hook
    try:
        with torch.no_grad():
            net(images(2))
        fused = not calls
        with no_fast_path(), torch.no_grad():
            assert not torch.backends.mha.get_fastpath_enabled()
            net(images(2))
    finally:
        del attn.forward
    assert fused and calls, "fused: the attention module is skipped; switched off, it runs"
    assert torch.backends.mha.get_fastpath_enabled()
    choice = last_spatial_layer(net, (3, SIDE, SIDE))
    assert choice.name == "encoder.layers.1" and torch.backends.mha.get_fastpath_enabled()
