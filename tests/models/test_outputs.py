"""Model outputs other than a tensor (``model.output``): dicts (Hugging Face style), tuples,
named tuples and attribute objects from Python models; ONNX files and V2 servers with several
named outputs. Unset, only an unambiguous choice is made, and recorded; anything else stops
with one line naming what the model returned and the setting to use."""

from __future__ import annotations

import sys
import types
import warnings
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
import torch
from torch import nn

from served import MODEL
from toy import SIZE, toy_config
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError, ModelError
from xai_core.explainers import EXPLAINERS
from xai_core.models.loading import ModelSpec, load_model
from xai_core.models.outputs import choose_named, choose_output, describe_output
from xai_core.runner import run
from xai_core.summary import RunReader

Pair = namedtuple("Pair", ["features", "logits"])


class ModelOutput(OrderedDict):
    """What Hugging Face models return: a dict that also answers attribute access."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Net(nn.Module):
    """ColourNet-sized conv net (3 classes) returning its logits wrapped as ``kind``."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.kind = kind
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        f = self.features(x)
        logits = self.fc(f.mean((2, 3)))
        return {
            "tensor": lambda: logits,
            "hf": lambda: ModelOutput(logits=logits, hidden_states=f),
            "dict_scores": lambda: {"scores": logits, "aux": f.mean((2, 3))},
            "tuple": lambda: (logits, f),
            "named": lambda: Pair(f.mean((2, 3)), logits),
            "ambiguous": lambda: {"main": logits, "aux": logits * 0.5},
            "features_first": lambda: (f, logits),
        }[self.kind]()


factories = types.ModuleType("output_nets")
factories.net = lambda kind="tensor": Net(kind).eval()
sys.modules["output_nets"] = factories


def spec(kind: str, **over) -> ModelSpec:
    return ModelSpec(factory="output_nets:net", factory_kwargs={"kind": kind}, input_size=SIZE, **over)


@pytest.mark.parametrize("kind,setting,selected", [
    ("hf", None, "logits"), ("dict_scores", None, "scores"), ("tuple", None, 0),
    ("named", "logits", "logits"), ("named", 1, 1), ("ambiguous", "main", "main"), ("features_first", 1, 1),
])
def test_the_logits_are_found_in_dicts_tuples_and_named_tuples(kind, setting, selected):
    handle = load_model(spec(kind, output=setting), 3)
    reference = load_model(spec("tensor"), 3)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(handle.logits(x), reference.logits(x))
    choice = handle.output_choice
    assert choice["selected"] == selected
    assert choice["rule"] == ("model.output" if setting is not None else choice["rule"])
    if setting is None:
        assert choice["rule"].startswith("auto: ")
    assert reference.output_choice is None  # a plain tensor needs no record
    # Explainers see the selected logits: gradients and layer hooks work through a dict output.
    for name in ("gradient", "gradcam", "deeplift"):
        maps = EXPLAINERS.get(name)().explain(handle, x, [0, 2])
        torch.testing.assert_close(maps, EXPLAINERS.get(name)().explain(reference, x, [0, 2]))


@pytest.mark.parametrize("kind,setting,match", [
    ("ambiguous", None, r"returned dict with keys main \(1, 3\), aux \(1, 3\); expected \(N, K\) logits — set "
                        r"model.output to the part that holds them \(e.g. model.output: main\)"),
    ("features_first", None, r"returned tuple of 2 \(\(1, 4, 32, 32\), \(1, 3\)\).*model.output: 0"),
    ("hf", "loss", r"model.output is 'loss', but the model .* returned ModelOutput with keys logits \(1, 3\), "
                   r"hidden_states \(1, 4, 32, 32\); expected one of its keys"),
    ("tuple", 5, r"model.output is 5, but .* returned tuple of 2"),
    ("tuple", 1, r"model outputs shape \(1, 4, 32, 32\); expected \(N, 3\) logits"),
])
def test_anything_else_stops_with_one_line(kind, setting, match):
    with pytest.raises(ModelError, match=match) as e:
        load_model(spec(kind, output=setting), 3)
    assert "\n" not in str(e.value)


def test_unit_rules():
    assert describe_output(Pair(np.zeros((2, 4)), np.zeros((2, 3)))) == "Pair of 2 (features (2, 4), logits (2, 3))"
    assert choose_output(np.zeros((1, 3)), None).describe() is None
    assert choose_named(["logits"], None, "x").describe() is None
    assert choose_named(["features", "logits"], None, "x").selector == "logits"
    assert choose_named(["a", "b"], 1, "x").selector == "b"
    with pytest.raises(ModelError, match=r"x has 2 outputs \['a', 'b'\]; set model.output"):
        choose_named(["a", "b"], None, "x")


def test_a_dict_output_run_records_the_choice(toy_data, tmp_path):
    model = {"factory": "output_nets:net", "factory_kwargs": {"kind": "hf"}, "activation": "sigmoid",
             "input_size": [SIZE, SIZE], "mean": [0, 0, 0], "std": [1, 1, 1]}
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", model=model, explainers=["gradient", "gradcam"],
                                      metrics=["deletion_auc"]))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "complete"
    assert r.manifest["model"]["output"] == {
        "selected": "logits", "rule": "auto: the only one of logits/scores/output among the keys ['logits', "
                                      "'hidden_states']"}


def test_output_setting_is_type_checked_and_v1_refuses_it():
    with pytest.raises(ConfigError, match=r"model.output is -1; expected a key or output name"):
        config_from_dict({"model": {"factory": "toy:colour_net", "output": -1}, "dataset": {"path": "m.jsonl"},
                          "explainers": ["gradient"]})
    with pytest.raises(ModelError, match="a V1 or Seldon server answers one list of scores"):
        ModelSpec(url="http://127.0.0.1:1/v1/models/m:predict", output="logits").validate()


# ---- ONNX ---------------------------------------------------------------------------------

class TwoOutputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = Net("tensor")

    def forward(self, x):
        logits = self.net(x)
        return logits[:, :2] * 0.0 + 1.0, logits  # features first: "the first output" is wrong


def export_two(path, names):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(TwoOutputs().eval(), (torch.rand(2, 3, SIZE, SIZE),), str(path), dynamo=False,
                          input_names=["input"], output_names=list(names),
                          dynamic_axes={"input": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    return path


def test_onnx_with_several_outputs(tmp_path):
    x = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    want = load_model(spec("tensor"), 3).logits(x)
    auto = load_model(ModelSpec(onnx=str(export_two(tmp_path / "a.onnx", ["features", "logits"])), input_size=SIZE), 3)
    np.testing.assert_allclose(auto.logits(x).numpy(), want.numpy(), atol=1e-5)
    assert auto.output_choice["selected"] == "logits" and auto.output_choice["rule"].startswith("auto")
    unnamed = export_two(tmp_path / "b.onnx", ["out_a", "out_b"])
    with pytest.raises(ModelError, match=r"has 2 outputs \['out_a', 'out_b'\]; set model.output .*out_a"):
        load_model(ModelSpec(onnx=str(unnamed), input_size=SIZE), 3)
    named = load_model(ModelSpec(onnx=str(unnamed), input_size=SIZE, output="out_b"), 3)
    np.testing.assert_allclose(named.logits(x).numpy(), want.numpy(), atol=1e-5)
    with pytest.raises(ModelError, match=r"outputs shape \(2, 2\) for 2 images \(output 'out_a'\)"):
        load_model(ModelSpec(onnx=str(unnamed), input_size=SIZE, output=0), 3)


# ---- a real V2 server (KServe) with two outputs ---------------------------------------------

@pytest.mark.parametrize("binary_data", [False, True])
def test_v2_server_with_two_outputs_answers_the_logits_not_the_first(kserve, binary_data):
    """``NAME-multi`` answers ``features`` (N, 4) and then ``logits``: before model.output the
    client took the first output silently."""
    from xai_core.demo import MEAN, STD

    common = {"activation": "sigmoid", "input_size": (64, 64), "mean": tuple(MEAN), "std": tuple(STD)}
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    local = load_model(ModelSpec(factory="xai_core.demo.model:load_demo_model", **common), 10).logits(x)
    url = kserve.url("v2", f"{MODEL}-multi")
    h = load_model(ModelSpec(url=url, binary_data=binary_data, request_batch=2, **common), 10)
    np.testing.assert_allclose(h.logits(x).numpy(), local.numpy(), atol=1e-5)
    assert h.output_choice == {"selected": "logits",
                               "rule": "auto: the only one of logits/scores/output among the outputs ['features', 'logits']"}
    with pytest.raises(ModelError, match=r"returned outputs of shape \(1, 4\) for 1 image"):
        load_model(ModelSpec(url=url, output="features", binary_data=binary_data, **common), 10)
    with pytest.raises(ModelError, match=r"model.output is 'scores', but model server .* has the outputs "
                                         r"\['features', 'logits'\]"):
        load_model(ModelSpec(url=url, output="scores", **common), 10)
