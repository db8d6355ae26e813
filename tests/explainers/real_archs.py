"""Tiny random-weight configurations of real timm and transformers classes (no download): the
architectures tests/explainers/test_timm_hf.py and the README's "timm" / "transformers" columns
run on (fifteen: eight timm, seven transformers). Every model takes (N, 3, 32, 32) unless named otherwise and has CLASSES logits."""

from __future__ import annotations

import torch

from timm_import import timm  # first: transformers' image code imports torchvision too
from transformers import (BeitConfig, BeitForImageClassification, ConvNextConfig, ConvNextForImageClassification,
                          DeiTConfig, DeiTForImageClassificationWithTeacher, Dinov2WithRegistersConfig,
                          Dinov2WithRegistersForImageClassification, SwinConfig, SwinForImageClassification,
                          ViTConfig, ViTForImageClassification)

from handles import make_handle

SIDE = 32
CLASSES = 5
_VIT = dict(img_size=SIDE, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=CLASSES)


def _seeded(fn):
    def build():
        torch.manual_seed(0)
        return fn().eval()
    build.__name__ = fn.__name__
    return build


TIMM = {
    "timm_vit": _seeded(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, **_VIT)),
    "timm_deit_distilled": _seeded(lambda: timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False,
                                                             **_VIT)),
    "timm_vit_reg4": _seeded(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=4, **_VIT)),
    "timm_vit_reg4_gap": _seeded(lambda: timm.create_model("vit_tiny_patch16_224", pretrained=False, reg_tokens=4,
                                                           class_token=False, global_pool="avg", fc_norm=False,
                                                           **_VIT)),
    "timm_swin": _seeded(lambda: timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=SIDE,
                                                   patch_size=4, window_size=4, embed_dim=16, depths=(1, 1),
                                                   num_heads=(1, 2), num_classes=CLASSES)),
    "timm_convnext": _seeded(lambda: timm.create_model("convnext_atto", pretrained=False, depths=(1, 1, 1, 1),
                                                       dims=(8, 16, 16, 32), num_classes=CLASSES)),
    "timm_efficientnet_b0": _seeded(lambda: timm.create_model("efficientnet_b0", pretrained=False,
                                                              num_classes=CLASSES)),
    "timm_resnet18": _seeded(lambda: timm.create_model("resnet18", pretrained=False, num_classes=CLASSES)),
}

_HF_VIT = dict(image_size=SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=64, num_labels=CLASSES)
HF = {
    "hf_vit_eager": _seeded(lambda: ViTForImageClassification(ViTConfig(attn_implementation="eager", **_HF_VIT))),
    "hf_vit_sdpa": _seeded(lambda: ViTForImageClassification(ViTConfig(attn_implementation="sdpa", **_HF_VIT))),
    "hf_deit_distilled": _seeded(lambda: DeiTForImageClassificationWithTeacher(DeiTConfig(**_HF_VIT))),
    "hf_beit": _seeded(lambda: BeitForImageClassification(BeitConfig(use_relative_position_bias=True, **_HF_VIT))),
    "hf_dinov2_reg4": _seeded(lambda: Dinov2WithRegistersForImageClassification(Dinov2WithRegistersConfig(
        num_register_tokens=4, **_HF_VIT))),
    "hf_swin": _seeded(lambda: SwinForImageClassification(SwinConfig(
        image_size=SIDE, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 2], window_size=4,
        num_labels=CLASSES))),
    "hf_convnext": _seeded(lambda: ConvNextForImageClassification(ConvNextConfig(
        num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=CLASSES))),
}
ARCHS = {**TIMM, **HF}


def handle(name: str):
    """The handle of architecture ``name``: pixels in [0, 1] (identity normalisation)."""
    h = make_handle(ARCHS[name](), size=SIDE, classes=CLASSES, activation="softmax")
    if name.startswith("hf_"):
        h.module.output = "logits"  # ImageClassifierOutput, as the runner's output rule picks it
    return h
