"""Known answers for Sparseness (Gini) and Complexity (entropy)."""

import numpy as np
import pytest
import torch
from metric_models import context

from xai_core.metrics import METRICS
from xai_core.metrics.complexity import normalised_entropy
from xai_core.metrics.sparseness import gini


def test_gini_known_values():
    d = 16
    one_hot = np.zeros((1, d))
    one_hot[0, 3] = -2.0  # |a| is used
    np.testing.assert_allclose(gini(one_hot), [(d - 1) / d])
    np.testing.assert_allclose(gini(np.ones((1, d))), [0.0])
    # sorted [0, 0, 1, 1]: Σ (2i − 5) aᵢ = 1 + 3 = 4; / (4 · 2) = 0.5
    np.testing.assert_allclose(gini(np.array([[1.0, 0.0, 1.0, 0.0]])), [0.5])
    np.testing.assert_allclose(gini(np.zeros((1, d))), [0.0])


def test_entropy_known_values():
    np.testing.assert_allclose(normalised_entropy(np.array([[0.0, 3.0, 0.0, 0.0]])), [0.0], atol=1e-12)
    np.testing.assert_allclose(normalised_entropy(np.ones((1, 8))), [1.0])
    np.testing.assert_allclose(normalised_entropy(np.array([[1.0, -1.0, 0.0, 0.0]])), [0.5])
    np.testing.assert_allclose(normalised_entropy(np.zeros((1, 8))), [1.0])


@pytest.mark.parametrize("name", ["sparseness", "complexity"])
def test_concise_map_scores_better(name):
    sal = torch.ones(3, 8, 8)
    sal[0] = 0.0
    sal[0, 2, 2] = 1.0  # one pixel
    sal[2, 0, 0] = float("inf")
    met = METRICS.get(name)()
    raw = met.evaluate(context(None, torch.zeros(3, 3, 8, 8), [0, 0, 0], sal))
    score = met.normalise(raw)
    assert score[0] == pytest.approx(1.0 if name == "complexity" else 63 / 64)
    assert score[1] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(raw[2])
