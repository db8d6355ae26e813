"""Max-/Avg-Sensitivity and Infidelity: agreement with Captum under the same seed, and known
answers."""

import numpy as np
import pytest
import torch
from captum.metrics import infidelity as captum_infidelity
from captum.metrics import sensitivity_max
from metric_models import LinearModel, SmoothNet, context, handle

from xai_core.explainers import EXPLAINERS
from xai_core.explainers.base import Explainer
from xai_core.metrics import METRICS

SEED = 7


@pytest.fixture
def setup():
    model = handle(SmoothNet(), 3)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 16, 16, generator=g)
    targets = torch.tensor([0, 1, 2, 0, 2])
    explainer = EXPLAINERS.get("gradient")()
    return model, images, targets, explainer


def explain_fn(model, explainer):
    return lambda x, t: explainer.explain(model, x, t)


@pytest.mark.parametrize("batch_size", [64, 7])  # one explain call, or several chunks of pairs
def test_max_sensitivity_matches_captum(setup, batch_size):
    model, images, targets, explainer = setup
    sal = explainer.explain(model, images, targets)
    ctx = context(model, images, targets, sal, explain=explain_fn(model, explainer), seed=SEED, batch_size=batch_size)
    ours = METRICS.get("max_sensitivity")({"radius": 0.05, "samples": 6}).evaluate(ctx)

    torch.manual_seed(SEED)
    def captum_explain(x, target):  # Captum works on tuples of tensors
        return (explainer.explain(model, x[0] if isinstance(x, tuple) else x, target),)

    ref = sensitivity_max(captum_explain, images, perturb_radius=0.05,
                          n_perturb_samples=6, target=targets)
    assert ours.min() > 1e-2  # the maps do move: the comparison is not 0 == 0
    np.testing.assert_allclose(ours, ref.double().numpy(), rtol=1e-5, atol=1e-5)


def test_avg_sensitivity_is_the_mean_of_the_same_draws(setup):
    model, images, targets, explainer = setup
    sal = explainer.explain(model, images, targets)
    ctx = context(model, images, targets, sal, explain=explain_fn(model, explainer), seed=SEED)
    avg = METRICS.get("avg_sensitivity")({"samples": 6}).evaluate(ctx)
    mx = METRICS.get("max_sensitivity")({"samples": 6}).evaluate(ctx)
    one = METRICS.get("max_sensitivity")({"samples": 1}).evaluate(ctx)
    assert (avg <= mx + 1e-12).all() and (avg >= one * 0 + 1e-4).all()
    # The global RNG is neither read nor advanced by the metric.
    state = torch.random.get_rng_state()
    METRICS.get("avg_sensitivity")({"samples": 2}).evaluate(ctx)
    assert torch.equal(state, torch.random.get_rng_state())


def test_sensitivity_of_a_model_independent_map_is_zero(setup):
    model, images, targets, _ = setup

    class Fixed(Explainer):
        name = "fixed"
        needs_gradients = False
        channel_reduction = "none"

        def attribute(self, model, images, targets):
            return torch.ones(images.shape[0], *images.shape[2:])

    exp = Fixed()
    met = METRICS.get("max_sensitivity")()
    ctx = context(model, images, targets, exp.explain(model, images, targets), explain=explain_fn(model, exp))
    model.passes = 0
    raw = met.evaluate(ctx)
    np.testing.assert_array_equal(raw, np.zeros(5))
    np.testing.assert_array_equal(met.normalise(raw), np.ones(5))
    assert met.normalise(np.array([1.0]))[0] == pytest.approx(np.exp(-1))


def captum_infid(model, images, targets, sal, *, samples, std, normalize):
    """Captum's infidelity with the same draws as ours: Gaussian noise, one value per pixel
    shared by the channels; the map goes in channel 0 (zeros elsewhere), so IᵀΦ = Σ I·S."""

    def perturb(x):
        noise = torch.randn((x.shape[0], 1, *x.shape[2:])) * std
        pert = noise.expand_as(x)
        return pert, x - pert

    attr = torch.zeros_like(images)
    attr[:, 0] = sal
    torch.manual_seed(SEED)
    return captum_infidelity(model.module, perturb, images, attr, target=targets, n_perturb_samples=samples,
                             normalize=normalize).double().numpy()


@pytest.mark.parametrize("normalize", [True, False])
def test_infidelity_matches_captum(setup, normalize):
    model, images, targets, explainer = setup
    sal = explainer.explain(model, images, targets)
    met = METRICS.get("infidelity")({"samples": 8, "noise_std": 0.3, "relative": False, "normalize": normalize})
    model.passes = 0
    ours = met.evaluate(context(model, images, targets, sal, seed=SEED))
    assert model.passes == 5 * 8 + 5
    ref = captum_infid(model, images, targets, sal, samples=8, std=0.3, normalize=normalize)
    assert ours.min() > 1e-3  # values of O(0.01–1): the 1e-5 agreement is not 0 == 0
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    assert (met.normalise(ours) <= 1).all() and (np.diff(met.normalise(np.array([0.0, 1.0, 5.0]))) < 0).all()


def test_relative_infidelity_is_captum_over_mean_squared_output_change(setup):
    model, images, targets, explainer = setup
    sal = explainer.explain(model, images, targets)
    rel = METRICS.get("infidelity")({"samples": 8, "noise_std": 0.3}).evaluate(context(model, images, targets, sal, seed=SEED))
    ref = captum_infid(model, images, targets, sal, samples=8, std=0.3, normalize=True)
    # E[Δf²] with the same draws: Captum's un-normalised infidelity of an all-zero map.
    msq = captum_infid(model, images, targets, torch.zeros_like(sal), samples=8, std=0.3, normalize=False)
    np.testing.assert_allclose(rel, ref / msq, rtol=1e-4, atol=1e-6)
    assert ((rel >= 0) & (rel <= 1)).all()


def test_exact_gradient_of_a_linear_model_has_zero_infidelity():
    # logit = W·x: Δf = W·I exactly and the channel-summed gradient map S gives IᵀS = W·I when
    # I is shared by the channels, so the infidelity is 0 (and a random map's is not).
    model = handle(LinearModel(), 3)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(4, 3, 16, 16, generator=g)
    targets = torch.tensor([0, 1, 2, 1])
    grad_sum = model.module.net.fc.weight.detach()[targets].view(4, 3, 16, 16).sum(1)
    for relative in (True, False):
        met = METRICS.get("infidelity")({"relative": relative, "noise_std": 0.1})
        raw = met.evaluate(context(model, images, targets, grad_sum))
        np.testing.assert_allclose(raw, 0.0, atol=1e-6)
        noise = met.evaluate(context(model, images, targets, torch.rand(4, 16, 16, generator=g)))
        assert (noise > 0.5 if relative else noise > 1e-3).all()
        assert (met.normalise(raw) > met.normalise(noise)).all()
