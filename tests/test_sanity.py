"""Cascading model-parameter randomisation (xai_core.sanity)."""

import json

import pytest
import torch
from toy import colour_net

from xai_core.errors import MetricError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers.base import Explainer
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel
from xai_core.sanity import parameterised_layers, randomisation_check


class Intensity(Explainer):
    """Ignores the model: the map is the image brightness (an edge-detector-like null)."""

    name = "intensity"
    needs_gradients = False
    channel_reduction = "none"

    def attribute(self, model, images, targets):
        return images.mean(dim=1)


def toy_handle(net=None):
    return ClassifierHandle(PixelSpaceModel(net or colour_net(), [0, 0, 0], [1, 1, 1]), "sigmoid", (16, 16), 3)


@pytest.fixture
def squares():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 16, 16, generator=g) * 0.1 + 0.35
    for i in range(4):
        x[i, :, 4:10, 5:11] = 0
        x[i, i % 3, 4:10, 5:11] = 1
    return x, torch.tensor([0, 1, 2, 0])


def test_gradient_on_a_trained_detector_passes(squares):
    model = toy_handle()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    res = randomisation_check(model, EXPLAINERS.get("gradient")(), *squares, seed=0)
    assert res["passed"] is True and res["final_similarity"] < 0.5
    assert [s["layers"] for s in res["steps"]] == [["features.0"]]
    # The original model is untouched.
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    json.dumps(res, allow_nan=False)


def test_model_independent_map_fails_with_similarity_one(squares):
    res = randomisation_check(toy_handle(), Intensity(), *squares)
    assert res["final_similarity"] == pytest.approx(1.0) and res["passed"] is False
    assert res["final_per_image"] == pytest.approx([1.0] * 4)


class Deep(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(4, 3)  # defined first, runs last
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.head(x.mean(dim=(2, 3)))


def test_layers_run_order_top_first_and_grouping(squares):
    net = Deep().eval()
    assert parameterised_layers(net, (3, 16, 16)) == ["conv1", "bn", "conv2", "head"]
    res = randomisation_check(toy_handle(net), EXPLAINERS.get("gradient")(), *squares, max_steps=2)
    assert [s["layers"] for s in res["steps"]] == [["head", "conv2"], ["bn", "conv1"]]
    res = randomisation_check(toy_handle(net), EXPLAINERS.get("gradient")(), *squares, layers=["head"])
    assert len(res["steps"]) == 1
    with pytest.raises(MetricError, match="'nope' is not a module"):
        randomisation_check(toy_handle(net), EXPLAINERS.get("gradient")(), *squares, layers=["nope"])


@pytest.mark.parametrize("name", ["gradient", "smoothgrad"])
def test_fewer_cascading_stages_give_the_same_verdict(squares, name):
    """sanity.steps (issue 24): the last stage randomises every layer whatever the grouping, so
    the final similarity and the verdict are those of 16 stages, at fewer passes."""
    from xai_core.models.zoo import resnet_small

    torch.manual_seed(0)
    model = toy_handle(resnet_small(num_classes=3).eval())
    exp = EXPLAINERS.get(name)(dict(EXPLAINERS.get(name).smoke_params))
    full = randomisation_check(model, exp, *squares, seed=0, max_steps=16)
    few = randomisation_check(model, exp, *squares, seed=0, max_steps=4)
    assert len(full["steps"]) == 16 and len(few["steps"]) == 4
    assert few["final_similarity"] == full["final_similarity"] and few["passed"] == full["passed"]
    assert few["final_per_image"] == full["final_per_image"]
    assert few["forward_passes"] < full["forward_passes"] / 3
