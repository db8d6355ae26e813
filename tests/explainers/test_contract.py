"""Registry-driven contract of every explainer, on the demo CNN and on EfficientNet-Lite0:
shape (N, H, W), finite, deterministic with a seed, a batch equals per-image calls, two labels
of one image explained together equal two separate calls. A new method is covered by
registering it (its ``smoke_params`` keep the run cheap)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS

ALL = list(EXPLAINERS)
REQUIRED = {"gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "gradient_shap",
            "deeplift", "deconvolution", "guided_backprop", "gradcam", "gradcam_pp", "guided_gradcam",
            "occlusion", "rise", "lime", "kernel_shap", "xrai", "random", "attention_rollout",
            "attention_relevance"}


def make(cls, **over):
    return cls({**cls.smoke_params, **over})


def close(a, b):
    # Batched convolutions may sum in another order than single-image ones: compare relative
    # to the map's scale, not bit for bit.
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    torch.testing.assert_close(a / scale, b / scale, rtol=0, atol=1e-3)


def has_seed(cls):
    return any(f.name == "seed" for f in dataclasses.fields(cls.Params))


def test_catalogue_lists_every_method_with_metadata(capsys):
    from xai_core.cli import main

    assert main(["list", "explainers", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert REQUIRED <= set(listed)
    for name in REQUIRED:
        meta = listed[name]
        assert meta["display_name"] and meta["paper"] and meta["description"]
        assert isinstance(meta["signed"], bool) and isinstance(meta["needs_gradients"], bool)
        assert isinstance(meta["params"], dict)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_contract_on_demo_model(cls, demo_model, demo_images, request):
    """On the demo CNN; methods that read attention (which the CNN has not) on a small ViT."""
    if cls.needs_attention:
        with pytest.raises(ExplainerError, match="no attention"):
            make(cls).explain(demo_model, demo_images[:1], [0])
        demo_model, demo_images = request.getfixturevalue("vit_model"), request.getfixturevalue("vit_images")
    model, (a, b) = demo_model, demo_images[:2]
    side = a.shape[-1]
    with torch.no_grad():
        order = model.predict(demo_images[:2]).argsort(1, descending=True)
    t1, t2, tb = int(order[0, 0]), int(order[0, 1]), int(order[1, 0])
    exp = make(cls)

    grouped = exp.explain_grouped(model, torch.stack([a, b]), [[t1, t2], [tb]], batch_size=64)
    alone = exp.explain(model, a[None], [t1], batch_size=64)
    mixed = exp.explain(model, torch.stack([b, a]), [tb, t2], batch_size=64)

    assert [tuple(m.shape) for m in grouped] == [(2, side, side), (1, side, side)]
    assert alone.shape == (1, side, side) and mixed.shape == (2, side, side)
    for m in (*grouped, alone, mixed):
        assert m.dtype == torch.float32 and torch.isfinite(m).all()
    if cls.name in REQUIRED:  # others (e.g. anchors) may legitimately find nothing to show
        assert grouped[0][0].abs().sum() > 0, "an all-zero map explains nothing"
    close(grouped[0][0], alone[0])   # batch (and its other label) vs a per-image call
    close(grouped[0][1], mixed[1])   # the second label, explained in another batch
    close(grouped[1][0], mixed[0])   # the second image, at another position
    # A discrete answer (anchors: a set of superpixels) may legitimately be the same under
    # another seed; continuous maps from sampled perturbations may not.
    if cls.name in REQUIRED and has_seed(cls) and alone.abs().sum() > 0:
        other = make(cls, seed=1).explain(model, a[None], [t1], batch_size=64)
        assert not torch.allclose(other, alone), "the seed parameter has no effect"


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_contract_on_efficientnet_lite0(cls, effnet, effnet_images):
    if cls.needs_attention:
        pytest.skip("EfficientNet has no attention (refusal: test_contract_on_demo_model)")
    if not cls.smoke_params and cls.name not in REQUIRED:
        pytest.skip("declare smoke_params to run this method on EfficientNet within the test budget")
    x = effnet_images[:1]
    with torch.no_grad():
        t1, t2 = effnet.predict(x)[0].topk(2).indices.tolist()
    exp = make(cls)
    (both,) = exp.explain_grouped(effnet, x, [[t1, t2]], batch_size=16)
    second = exp.explain(effnet, x, [t2], batch_size=16)
    side = x.shape[-1]
    assert both.shape == (2, side, side) and second.shape == (1, side, side)
    assert torch.isfinite(both).all() and both[0].abs().sum() > 0
    close(both[1], second[0])
