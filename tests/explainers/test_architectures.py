"""Every registered explainer × the five test architectures (tests/archs.py): either refused up
front with one line, or a passing correctness check of what the method promises on that
network. The README's explainer × model-kind table states the same (tests/test_readme_models.py
reads its architecture columns from :func:`refusal`)."""

from __future__ import annotations

import pytest
import torch

from archs import ARCHITECTURES, SIDE, images
from handles import make_handle
from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._rules import pearson, plain_gradients

ALL = list(EXPLAINERS)
#: The layer the CAM family resolves by itself on each architecture.
CAM_LAYERS = {"cnn": "features", "vit": "encoder.layers.1", "hand_vit": "blocks.1", "swin": "stages.1",
              "convnext": "stages"}


def make(cls, **over):
    return cls({**cls.smoke_params, **over})


@pytest.fixture(scope="module")
def models():
    return {name: make_handle(factory(), size=SIDE, classes=10) for name, factory in ARCHITECTURES.items()}


def refusal(cls, model) -> str | None:
    """The one-line reason ``cls`` refuses ``model`` up front (before explaining), or None."""
    try:
        make(cls).check_model(model)
    except ExplainerError as e:
        return str(e)
    return None


def _pairs():
    x = images(2, seed=5)
    return x, torch.tensor([1, 7])


def _completeness(model, maps, x, t):
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, t[:, None])[:, 0].double()
    return (maps.flatten(1).sum(1).double() - gap).abs() / gap.abs()


def check_integrated_gradients(model, x, t, arch):
    """Completeness (Sundararajan et al., Prop. 1) at 64 steps, and the recorded error is the true one."""
    exp = EXPLAINERS.get("integrated_gradients")({"steps": 64})
    maps = exp.explain(model, x, t)
    err = _completeness(model, maps, x, t)
    torch.testing.assert_close(torch.from_numpy(exp.pair_diagnostics(2)["completeness_error"]), err, atol=1e-4, rtol=1e-3)
    assert err.max() < 0.1


def check_deeplift(model, x, t, arch):
    exp = EXPLAINERS.get("deeplift")()
    assert _completeness(model, exp.explain(model, x, t), x, t).max() < 1e-4


def check_guided(name):
    def check(model, x, t, arch):
        exp = make(EXPLAINERS.get(name))
        exp.explain(model, x, t)
        rule = "deconv" if name == "deconvolution" else "guided"
        from xai_core.explainers._rules import rule_gradients

        guided, hits, _ = rule_gradients(model, x, t, rule)
        assert hits["rectifier"] + hits["gated"] > 0
        want = pearson(guided, plain_gradients(model, x, t))
        torch.testing.assert_close(torch.from_numpy(exp.pair_diagnostics(2)["gradient_correlation"]), want)
    return check


def check_cam(name):
    def check(model, x, t, arch):
        exp = EXPLAINERS.get(name)()
        exp.explain(model, x, t)
        assert exp.resolved["layer"] == CAM_LAYERS[arch]
    return check


def check_attention(name):
    def check(model, x, t, arch):
        exp = EXPLAINERS.get(name)()
        maps = exp.explain(model, x, t)
        assert (maps >= 0).all() and exp.resolved["grid"] == [4, 4] and exp.resolved["layers"] == 3
    return check


def check_gradient(model, x, t, arch):
    maps = EXPLAINERS.get("gradient")().explain(model, x, t)
    torch.testing.assert_close(maps, plain_gradients(model, x, t).abs().amax(1))


def check_gradient_x_input(model, x, t, arch):
    maps = EXPLAINERS.get("gradient_x_input")().explain(model, x, t)
    torch.testing.assert_close(maps, (plain_gradients(model, x, t) * x).sum(1))


CHECKS = {"integrated_gradients": check_integrated_gradients, "deeplift": check_deeplift,
          "guided_backprop": check_guided("guided_backprop"), "deconvolution": check_guided("deconvolution"),
          "guided_gradcam": check_guided("guided_gradcam"), "gradcam": check_cam("gradcam"),
          "gradcam_pp": check_cam("gradcam_pp"), "attention_rollout": check_attention("attention_rollout"),
          "attention_relevance": check_attention("attention_relevance"), "gradient": check_gradient,
          "gradient_x_input": check_gradient_x_input}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_each_explainer_on_each_architecture(cls, arch, models):
    model = models[arch]
    x, t = _pairs()
    why = refusal(cls, model)
    if why is not None:
        assert "\n" not in why and why.startswith(f"{cls.name} ({cls.name}): ")
        with pytest.raises(ExplainerError):
            make(cls).explain(model, x, t)
        return
    maps = make(cls).explain(model, x, t)
    assert maps.shape == (2, SIDE, SIDE) and torch.isfinite(maps).all()
    if cls.name in ("gradcam", "gradcam_pp", "guided_gradcam"):
        # Signed token activations can leave no positive evidence anywhere, and the final ReLU
        # (eq. 2) then gives 0 legitimately; without it the class activation map is never empty.
        cam = EXPLAINERS.get(cls.name.replace("guided_", ""))({"relu": False}).explain(model, x, t)
        assert (cam.flatten(1).abs().sum(1) > 0).all()
    elif cls.name not in ("anchors", "random"):
        assert (maps.flatten(1).abs().sum(1) > 0).all(), "an all-zero map explains nothing"
    if cls.name in CHECKS:
        CHECKS[cls.name](model, x, t, arch)
