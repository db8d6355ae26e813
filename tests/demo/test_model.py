"""Tests of the committed demo model."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from xai_core.demo import CLASSES, WEIGHTS_PATH
from xai_core.demo.model import DemoCNN, load_demo_model, preprocess


def test_weights_file_small():
    assert WEIGHTS_PATH.is_file()
    assert WEIGHTS_PATH.stat().st_size < 2 * 1024 * 1024


def test_load_demo_model_gives_finite_logits():
    model = load_demo_model()
    assert isinstance(model, DemoCNN) and not model.training
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, len(CLASSES)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_last_conv_keeps_spatial_resolution():
    model = DemoCNN().eval()
    assert isinstance(model.last_conv, nn.Conv2d)
    seen = []
    handle = model.last_conv.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    handle.remove()
    assert seen[0][-2:] == (16, 16)
    # ReLUs are modules (hookable by explainers), not functional calls.
    assert any(isinstance(m, nn.ReLU) for m in model.modules())


def test_missing_weights_error_names_the_trainer(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m xai_core.demo.train"):
        load_demo_model(tmp_path / "nope.pt")


def test_preprocess_shapes():
    img = np.full((64, 64, 3), 128, dtype=np.uint8)
    x = preprocess(img)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert preprocess(np.stack([img, img])).shape == (2, 3, 64, 64)


def test_model_recognises_unseen_test_digits(small_dataset):
    """The committed weights (with the MEAN/STD constants) work on fresh test images."""
    from xai_core.demo.train import evaluate, load_split, predict_proba

    images, targets = load_split(small_dataset, "test")
    metrics = evaluate(predict_proba(load_demo_model(), images), targets)
    assert metrics["per_label_accuracy"] > 0.85 and metrics["mAP"] > 0.8


def test_recorded_metrics():
    metrics = json.loads((WEIGHTS_PATH.parent / "metrics.json").read_text())
    assert {"per_label_accuracy", "micro_f1", "macro_f1", "mAP"} <= metrics.keys()
