"""Class Sensitivity: label-agnostic, maps of the top and bottom class compared."""

import numpy as np
import pytest
import torch
from metric_models import context

from xai_core.metrics import METRICS


def channel_explain(x, t):
    """A map that is channel t of the image: class-specific by construction."""
    return x[torch.arange(x.shape[0]), t]


def test_opposite_maps_score_best_and_identical_maps_worst():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(2, 8, 8, generator=g)
    images = torch.stack([r, r * r, 1 - r], dim=1)  # channel 2 = 1 − channel 0
    probs = torch.tensor([[0.9, 0.5, 0.1], [0.9, 0.5, 0.1]])  # argmax 0, argmin 2
    met = METRICS.get("class_sensitivity")()
    assert met.label_agnostic
    ctx = context(None, images, probs.argmax(1), None, explain=channel_explain, probs=probs)
    raw = met.evaluate(ctx)
    np.testing.assert_allclose(raw, [-1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(met.normalise(raw), [1.0, 1.0], atol=1e-6)

    same = context(None, images, probs.argmax(1), None, explain=lambda x, t: x.mean(1), probs=probs)
    np.testing.assert_allclose(met.evaluate(same), [1.0, 1.0], atol=1e-6)
    assert met.normalise(np.array([1.0]))[0] == pytest.approx(0.0)


def test_flat_maps_and_missing_probs(mean_model):
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    met = METRICS.get("class_sensitivity")()
    # MeanModel has 2 classes; without ctx.probs the metric predicts them itself (N passes).
    flat = context(mean_model, images, [0, 0, 0], None, explain=lambda x, t: torch.ones(x.shape[0], 16, 16))
    mean_model.passes = 0
    np.testing.assert_array_equal(met.evaluate(flat), [1.0, 1.0, 1.0])  # equal flat maps: class-blind
    assert mean_model.passes == 3

    def one_flat(x, t):
        out = x.mean(1).clone()
        out[t == 1] = 0.0
        return out

    top = mean_model.predict(images).argmax(1)  # with 2 classes the bottom one is the other
    np.testing.assert_array_equal(met.evaluate(context(mean_model, images, top, None, explain=one_flat)), [0, 0, 0])
