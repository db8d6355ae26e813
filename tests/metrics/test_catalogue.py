"""Every registered metric honours the contract the engine and the dashboard rely on."""

import json

import numpy as np
import pytest
import torch
from metric_models import SmoothNet, context, handle

from xai_core.explainers import EXPLAINERS
from xai_core.metrics import METRICS
from xai_core.metrics.base import CATEGORIES, NEEDS

# Cheap settings: the contract does not depend on the number of steps.
FAST = {"deletion_auc": {"steps": 4}, "insertion_auc": {"steps": 4}, "naive_faithfulness": {"chunks": 4},
        "road_morf": {"fractions": [0.5]}, "road_lerf": {"fractions": [0.5]},
        "max_sensitivity": {"samples": 2}, "avg_sensitivity": {"samples": 2}, "infidelity": {"samples": 2}}


@pytest.fixture(scope="module")
def batch():
    model = handle(SmoothNet(), 3)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16, generator=g)
    targets = torch.tensor([0, 2, 1])
    exp = EXPLAINERS.get("gradient")()
    masks = np.zeros((3, 16, 16), bool)
    masks[:, 4:12, 4:12] = True
    return model, images, targets, exp, masks


def test_catalogue_is_complete():
    expected = {"deletion_auc", "insertion_auc", "naive_faithfulness", "road_morf", "road_lerf", "pointing_game",
                "iosr", "relevance_mass_accuracy", "relevance_rank_accuracy", "max_sensitivity",
                "avg_sensitivity", "infidelity", "sparseness", "complexity", "class_sensitivity"}
    assert expected <= set(METRICS.names())


@pytest.mark.parametrize("cls", list(METRICS), ids=lambda c: c.name)
def test_metric_contract(cls, batch):
    model, images, targets, exp, masks = batch
    meta = cls.metadata()
    assert meta["category"] in CATEGORIES and set(meta["needs"]) <= set(NEEDS)
    assert meta["paper"] and meta["score_mapping"] and meta["description"]
    json.dumps(meta)  # the manifest copies it

    met = cls(FAST.get(cls.name))
    explain = lambda x, t: exp.explain(model, x, t)  # noqa: E731
    if cls.label_agnostic:
        probs = model.predict(images)
        ctx = context(model, images, probs.argmax(1), None, explain=explain, probs=probs)
    else:
        ctx = context(model, images, targets, exp.explain(model, images, targets), masks=masks,
                      has_mask=np.array([True, True, False]), is_ground_truth=np.array([True, False, True]),
                      explain=explain)
    state = torch.random.get_rng_state()
    raw = met.evaluate(ctx)
    assert torch.equal(state, torch.random.get_rng_state()), "metrics draw from ctx.seed, not the global RNG"
    assert isinstance(raw, np.ndarray) and raw.dtype == np.float64 and raw.shape == (3,)
    if cls.category == "localization":
        assert np.isfinite(raw[0]) and np.isnan(raw[1:]).all()  # not ground truth / no mask
    else:
        assert np.isfinite(raw).all()
    lo, hi = cls.value_range
    assert ((raw >= lo - 1e-9) & (raw <= hi + 1e-9))[np.isfinite(raw)].all()
    score = met.normalise(raw)
    assert ((score >= 0) & (score <= 1))[np.isfinite(raw)].all() and np.isnan(score[np.isnan(raw)]).all()
    # The mapping follows the declared direction.
    a, b = (0.2, 0.4) if hi == np.inf or (lo, hi) == (0.0, 1.0) else (-0.5, 0.5)
    s = met.normalise(np.array([a, b]))
    assert (s[1] > s[0]) == cls.higher_is_better
    np.testing.assert_array_equal(met.evaluate(ctx), raw)  # deterministic for a given seed
