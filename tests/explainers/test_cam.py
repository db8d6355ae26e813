"""The CAM family: automatic layer choice on three architectures, closed-form answers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._layers import LayerCapture, last_spatial_layer

from handles import make_handle


@pytest.mark.parametrize("which,layer,channels", [
    ("demo_model", "features", 96),    # the last conv block's output (after its ReLU)
    ("resnet", "layer3", 64),          # the last stage, i.e. after the final skip addition + F.relu
    ("effnet", "_swish", 1280),        # the head's ReLU6 — a module EfficientNet also calls in the stem
])
def test_automatic_layer_is_the_last_spatial_stage(which, layer, channels, request):
    model = request.getfixturevalue(which)
    side = model.input_size[0]
    cam = EXPLAINERS.get("gradcam")()
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    maps = cam.explain(model, x, [0, 1])
    assert cam.resolved_layer == layer
    assert maps.shape == (2, side, side) and torch.isfinite(maps).all()
    choice = last_spatial_layer(model.net, (3, side, side))
    with LayerCapture(choice) as cap, torch.no_grad():
        model.module(x)
    assert cap.output.shape[1] == channels and min(cap.output.shape[2:]) > 1
    if which == "effnet":
        assert choice.call == 1  # second call of the shared module, not the stem's


class CamNet(nn.Module):
    """conv1×1 → ReLU → global average pool → linear: the CAM of Zhou et al. (2016) in closed form."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_gradcam_and_gradcam_pp_closed_forms():
    net = CamNet()
    model = make_handle(net, size=16, classes=3)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 2])
    with torch.no_grad():
        a = net.features(x)                                  # (2, 4, 16, 16)
    w = net.fc.weight.detach()[t].view(2, 4, 1, 1)
    g = w / (16 * 16)                                        # ∂logit/∂A, constant in space
    expected = torch.relu((g * a).sum(1))                    # Grad-CAM eq. (1)–(2)
    torch.testing.assert_close(EXPLAINERS.get("gradcam")().explain(model, x, t), expected)
    # Grad-CAM++ eq. (19): a_ij = g² / (2g² + Σ_ab A_ab g³), α = Σ_ij a_ij ReLU(g)
    coef = g ** 2 / (2 * g ** 2 + a.sum((2, 3), keepdim=True) * g ** 3)
    alpha = 16 * 16 * coef * torch.relu(g)
    expected_pp = torch.relu((alpha * a).sum(1))
    torch.testing.assert_close(EXPLAINERS.get("gradcam_pp")().explain(model, x, t), expected_pp)


def test_named_layer_and_unknown_layer(demo_model, demo_images):
    x = demo_images[:1]
    named = EXPLAINERS.get("gradcam")({"layer": "features.4"}).explain(demo_model, x, [3])
    auto = EXPLAINERS.get("gradcam")().explain(demo_model, x, [3])
    torch.testing.assert_close(named, auto)  # features.4 is the last block: the same tensor
    with pytest.raises(ExplainerError, match="layer 'features.9' is not a module.*features.4.0"):
        EXPLAINERS.get("gradcam")({"layer": "features.9"}).explain(demo_model, x, [3])
