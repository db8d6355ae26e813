"""Outputs that only rounding moves are no change (xai_core/rounding.py, issue 22): the
perturbation explainers paint exactly 0 for them and relative infidelity is NaN, instead of
numbers made of the machine's kernel order; a real response, however small, is kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xai_core.explainers import EXPLAINERS
from xai_core.metrics import METRICS
from xai_core.metrics.base import MetricContext
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel
from xai_core.rounding import OUTPUT_ULPS, rounding_floor, unchanged_columns, within_rounding

from toy import SIZE, colour_net

EPS = float(torch.finfo(torch.float32).eps)


def handle(net, classes=3):
    return ClassifierHandle(PixelSpaceModel(net.eval(), (0.0,) * 3, (1.0,) * 3), "sigmoid", (SIZE, SIZE), classes)


@pytest.fixture(scope="module")
def red_square():
    """Grey noise with a pure red square: ColourNet's red logit reads the square; its green
    and blue logits are −2 whatever any perturbation does (ReLU of a negative number)."""
    g = torch.Generator().manual_seed(0)
    img = 0.35 + 0.1 * torch.rand(1, 1, SIZE, SIZE, generator=g).expand(1, 3, SIZE, SIZE).clone()
    img[:, :, 8:16, 8:16] = 0.0
    img[:, 0, 8:16, 8:16] = 1.0
    return img


def test_the_floor_is_ulps_of_the_magnitude():
    assert float(rounding_floor(torch.tensor(0.5), "prob")) == pytest.approx(OUTPUT_ULPS * EPS * 0.5)
    assert float(rounding_floor(torch.tensor(0.5), "logit")) == pytest.approx(OUTPUT_ULPS * EPS)  # max(1, |logit|)
    assert float(rounding_floor(torch.tensor(-30.0), "logit")) == pytest.approx(OUTPUT_ULPS * EPS * 30)
    # A probability of 1e-6 moving by 1e-9 is a real (0.1 %) change; by 1e-13, rounding.
    p = torch.tensor([1e-6, 1e-6])
    assert within_rounding(torch.tensor([1e-9, 1e-13]), p, "prob").tolist() == [False, True]
    y = torch.tensor([[0.3, 2.0, 0.1], [0.3, 2.0 + 4 * EPS * 2, 0.1 + 1e-4]])
    assert unchanged_columns(y, "prob").tolist() == [True, True, False]
    assert unchanged_columns(torch.zeros(0, 2)).tolist() == [False, False]


@pytest.mark.parametrize("name", ["lime", "rise", "occlusion", "kernel_shap"])
def test_a_label_no_perturbation_moves_gets_an_exactly_zero_map(name, red_square):
    model = handle(colour_net())
    # Occlusion: windows that can cover the whole square (ColourNet max-pools over it).
    exp = EXPLAINERS.get(name)({"samples": 64} if name in ("lime", "kernel_shap") else
                               {"masks": 64} if name == "rise" else {"window": 16, "stride": 4})
    red, green = exp.explain(model, red_square.expand(2, -1, -1, -1), torch.tensor([0, 1]))
    assert (green == 0).all(), f"{name} painted {float(green.abs().max()):.3g} for outputs that never moved"
    # The red logit does respond: its map is kept and points at the square.
    assert red.abs().max() > 1e-3
    inside = red[8:16, 8:16].abs().mean()
    assert inside > 2 * red.abs().mean()


def test_infidelity_of_an_output_only_rounding_moves_is_nan_and_a_real_one_is_kept(red_square):
    # Infidelity's noise is shared by the colour channels, and ColourNet's red feature
    # (r − g/2 − b/2) cancels it exactly: Δf is float rounding alone (~4 ulps of the logit).
    model = handle(colour_net())
    grad = EXPLAINERS.get("gradient")().explain(model, red_square, torch.tensor([0]))
    met = METRICS.get("infidelity")({"samples": 8})
    raw = met.evaluate(MetricContext(model, red_square, torch.tensor([0]), grad, seed=0))
    assert np.isnan(raw).all(), raw

    class Tilted(nn.Module):  # plus 0.1 × the mean pixel: Δf ~ 6e-5, eight floors
        def __init__(self):
            super().__init__()
            self.net = colour_net()

        def forward(self, x):
            return self.net(x) + 0.1 * x.mean((1, 2, 3)).unsqueeze(1)

    tilted = handle(Tilted())
    raw = met.evaluate(MetricContext(tilted, red_square, torch.tensor([0]),
                                     torch.full((1, SIZE, SIZE), 1.0 / SIZE ** 2), seed=0))
    assert np.isfinite(raw).all() and raw[0] < 0.1  # a uniform map predicts a mean-pixel response
