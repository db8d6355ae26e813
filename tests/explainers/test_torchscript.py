"""Explainers on TorchScript models: gradient methods give the eager model's maps exactly;
methods that act inside the Python forward pass (backward rules, layer hooks) are refused up
front with one line instead of returning wrong maps."""

import io

import pytest
import torch

from handles import make_handle
from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.models.zoo import resnet_small

PYTHON_ONLY = {"deeplift", "guided_backprop", "deconvolution", "gradcam", "gradcam_pp", "guided_gradcam",
               "attention_rollout", "attention_relevance"}


@pytest.fixture(scope="module")
def nets():
    eager = resnet_small(num_classes=5)
    example = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    traced = torch.jit.trace(eager, example)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    buf.seek(0)
    # "loaded": what `model.torchscript: file.pt` gives (torch.jit.load of a saved export).
    return {"eager": eager, "trace": traced, "loaded": torch.jit.load(buf)}


@pytest.fixture(scope="module")
def pairs():
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 32, 32, generator=g), torch.tensor([1, 3])


def handle(net):
    return make_handle(net, activation="softmax", size=32, classes=5)


def test_the_registry_marks_exactly_the_python_forward_methods():
    assert {c.name for c in EXPLAINERS if c.needs_python_forward} == PYTHON_ONLY
    assert all("needs_python_forward" in c.metadata() for c in EXPLAINERS)


def test_deeplift_on_torchscript_is_refused_not_silently_wrong(nets, pairs):
    x, t = pairs
    cls = EXPLAINERS.get("deeplift")
    eager = cls()
    eager.explain(handle(nets["eager"]), x, t)
    assert eager.diagnostics["completeness_error"] < 1e-4  # Σ attr = F(x) − F(0) on the Python model
    # What used to happen on the TorchScript export: the rescale rule is never applied (its
    # activations run in C++), so the "DeepLIFT" map is gradient × input, whose sum misses
    # F(x) − F(0) by tens of per cent.
    from xai_core.explainers._rules import rule_gradients

    grad, hits, logits = rule_gradients(handle(nets["trace"]), x, t, "rescale", references=torch.zeros_like(x))
    gap = (logits[:2] - logits[2:]).gather(1, t.view(-1, 1)).view(-1)
    assert sum(hits.values()) == 0 and float(((grad * x).flatten(1).sum(1) - gap).abs().max() / gap.abs().max()) > 0.05
    for kind in ("trace", "loaded"):
        with pytest.raises(ExplainerError, match=r"deeplift \(deeplift\): cannot explain a TorchScript model") as e:
            cls().explain(handle(nets[kind]), x, t)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", sorted(PYTHON_ONLY - {"deeplift"}))
def test_hook_and_rule_methods_refuse_torchscript(nets, pairs, name):
    cls = EXPLAINERS.get(name)
    with pytest.raises(ExplainerError, match="cannot explain a TorchScript model"):
        cls(cls.smoke_params).explain(handle(nets["trace"]), *pairs)
    # A Python module that wraps a scripted part is refused too.
    wrapped = torch.nn.Sequential(nets["loaded"])
    with pytest.raises(ExplainerError, match="TorchScript"):
        cls(cls.smoke_params).explain(handle(wrapped), *pairs)


@pytest.mark.parametrize("name", ["gradient", "gradient_x_input", "integrated_gradients", "smoothgrad",
                                  "gradient_shap", "xrai", "occlusion"])
def test_gradient_and_forward_methods_match_the_eager_model(nets, pairs, name):
    cls = EXPLAINERS.get(name)
    ref = cls(cls.smoke_params).explain(handle(nets["eager"]), *pairs)
    for kind in ("trace", "loaded"):
        got = cls(cls.smoke_params).explain(handle(nets[kind]), *pairs)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
