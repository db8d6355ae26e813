"""MC-dropout uncertainty: inserted dropout, restoration of the model, known spreads, Beta
intervals."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import beta as beta_dist
from torch import nn

from xai_core.errors import ModelError
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel
from xai_core.uncertainty import beta_interval, mc_dropout


class SmallNet(nn.Module):
    """conv → BatchNorm → ReLU → global pool → Linear(8 → 3); optional Dropout before the head."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.head = nn.Linear(8, 3)
        with torch.no_grad():  # non-trivial BatchNorm statistics, which must survive the call
            self.features[1].running_mean.uniform_(-0.2, 0.2)
            self.features[1].running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return self.head(self.drop(self.features(x)))


class MeanNet(nn.Module):
    """logit = 4 · mean(x): a single feature into a Linear head, so MC dropout has a closed form."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(1, 1)
        with torch.no_grad():
            self.head.weight.fill_(4.0)
            self.head.bias.zero_()

    def forward(self, x):
        return self.head(x.mean((1, 2, 3)).unsqueeze(1))


def handle(net, k, size=16):
    return ClassifierHandle(PixelSpaceModel(net.eval(), [0.5] * 3, [0.25] * 3), "sigmoid", (size, size), k)


def images(n=4, size=16):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_inserted_dropout_gives_spread_and_leaves_the_model_unchanged():
    model = handle(SmallNet(), 3)
    x = images()
    before = copy.deepcopy(model.module.state_dict())
    p_before = model.predict(x)
    passes0 = model.passes

    res = mc_dropout(model, x, passes=10, dropout=0.2, batch_size=16)

    assert res.dropout == "inserted before head"
    assert (res.std > 0).all() and res.std.shape == (4, 3)
    # N·passes stochastic + N deterministic + 1 image to locate the head layer.
    assert res.model_passes == model.passes - passes0 == 4 * 10 + 4 + 1
    state = model.module.state_dict()
    assert all(torch.equal(before[k], state[k]) for k in before)  # BatchNorm statistics included
    assert not any(m.training for m in model.module.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.module.modules())
    assert torch.equal(model.predict(x), p_before)
    np.testing.assert_allclose(res.prob, p_before.numpy(), atol=1e-6)
    assert ((res.lo <= res.mean + 1e-6) & (res.mean <= res.hi + 1e-6)).all()


def test_existing_dropout_is_used_at_its_rate_and_switched_back_while_batchnorm_stays_eval():
    net = SmallNet(dropout=0.3)
    model = handle(net, 3)
    bn_mean = net.features[1].running_mean.clone()
    res = mc_dropout(model, images(), passes=6, dropout=0.9)
    assert res.dropout == "existing"
    assert (res.std > 0).all()
    assert not net.drop.training and not net.features[1].training
    assert torch.equal(net.features[1].running_mean, bn_mean)  # a train-mode BN would update it
    assert res.model_passes == 4 * 6 + 4


def test_spread_matches_the_closed_form_of_dropout_on_one_feature():
    # Grey images, identity normalisation: feature 0.5, deterministic logit 2. Dropout p on the
    # single feature: logit 2/(1 − p) with prob 1 − p, else 0 (sigmoid 0.5) — a two-point law.
    model = ClassifierHandle(PixelSpaceModel(MeanNet().eval(), [0.0] * 3, [1.0] * 3), "sigmoid", (8, 8), 1)
    x = torch.full((2, 3, 8, 8), 0.5)
    p = 0.5
    hi = 1 / (1 + np.exp(-4 * 0.5 / (1 - p)))
    res = mc_dropout(model, x, passes=600, dropout=p, batch_size=256)
    want_std = np.sqrt(p * (1 - p)) * (hi - 0.5)
    want_mean = (1 - p) * hi + p * 0.5
    np.testing.assert_allclose(res.std[:, 0], want_std, rtol=0.1)
    np.testing.assert_allclose(res.mean[:, 0], want_mean, atol=0.03)
    np.testing.assert_allclose(res.prob[:, 0], 1 / (1 + np.exp(-2.0)), atol=1e-6)


def test_seeded_and_the_global_random_stream_is_untouched():
    model = handle(SmallNet(), 3)
    x = images()
    state = torch.get_rng_state()
    a = mc_dropout(model, x, passes=5, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = mc_dropout(model, x, passes=5, seed=3)
    c = mc_dropout(model, x, passes=5, seed=4)
    np.testing.assert_array_equal(a.std, b.std)
    assert not np.array_equal(a.std, c.std)


def test_given_probabilities_save_the_deterministic_pass():
    model = handle(SmallNet(dropout=0.3), 3)
    x = images()
    probs = model.predict(x)
    res = mc_dropout(model, x, passes=4, probs=probs)
    assert res.model_passes == 4 * 4
    np.testing.assert_array_equal(res.prob, probs.numpy())


def test_test_time_augmentation_alone_and_nothing_random_is_an_error():
    model = handle(SmallNet(), 3)
    res = mc_dropout(model, images(), passes=5, dropout=0.0, tta_shift=2, tta_noise=0.05)
    assert res.dropout == "none" and (res.std > 0).all()
    with pytest.raises(ModelError, match="nothing is random"):
        mc_dropout(model, images(), passes=5, dropout=0.0)
    with pytest.raises(ModelError, match="passes"):
        mc_dropout(model, images(), passes=1)


def test_beta_interval_known_answers_and_edges():
    # mean 0.3, std 0.1 → c = 0.21 / 0.01 − 1 = 20 → Beta(6, 14).
    lo, hi = beta_interval(0.3, 0.1)
    np.testing.assert_allclose((lo, hi), beta_dist.interval(0.95, 6.0, 14.0), rtol=1e-9)
    lo, hi = beta_interval(np.array([[0.2, 0.7, 0.4]]), np.array([[0.0], [0.05]]), 0.9)
    assert lo.shape == hi.shape == (2, 3)
    np.testing.assert_array_equal(lo[0], [0.2, 0.7, 0.4])  # std 0: degenerate interval
    np.testing.assert_array_equal(hi[0], [0.2, 0.7, 0.4])
    assert (lo[1] < [0.2, 0.7, 0.4]).all() and (hi[1] > [0.2, 0.7, 0.4]).all()
    # p at 0 / 1 and infeasible moments: finite (no NaN), ordered, inside [0, 1].
    lo, hi = beta_interval([0.0, 1.0, 0.5, 1e-4], [0.1, 0.1, 0.5, 0.01])
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert ((0 <= lo) & (lo <= hi) & (hi <= 1)).all()
    np.testing.assert_allclose((lo[2], hi[2]), (0.0, 1.0), atol=1e-6)  # two-point limit at p = 0.5
