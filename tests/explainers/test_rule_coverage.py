"""DeepLIFT and the guided methods on modern architectures: DeepLIFT is refused up front, naming
the modules, where its Rescale rule does not cover an operation (LayerNorm, softmax
attention, products of activations) — it used to miss completeness by hundreds of per cent
there — and exact where it does (GELU included); guided backprop's GELU rule is applied on
transformer blocks and each map records how far it is from the plain gradient."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from archs import SIDE, convnext, hand_vit, images, mobilenet, swin, vit
from handles import make_handle
from xai_core.errors import ExplainerError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._rules import rule_gradients


def handle(net):
    return make_handle(net, size=SIDE, classes=10)


def completeness(model, maps, x, t):
    with torch.no_grad():
        gap = (model(x) - model(torch.zeros_like(x))).gather(1, t[:, None])[:, 0]
    return ((maps.flatten(1).sum(1) - gap).abs() / gap.abs()).max().item()


@pytest.mark.parametrize("net,kinds,first", [
    (vit(), ["layer_norm", "softmax attention"], "encoder.layers.0.norm1"),
    (hand_vit(), ["layer_norm", "products of two activations", "softmax attention"], "blocks.0.norm1"),
    (swin(), ["layer_norm", "products of two activations", "softmax attention"], "stages.0.0.norm1"),
    (convnext(), ["layer_norm"], "stem.1"),
], ids=["vit", "hand_vit", "swin", "convnext"])
def test_deeplift_is_refused_where_its_rule_does_not_apply(net, kinds, first):
    model = handle(net)
    with pytest.raises(ExplainerError, match="its Rescale rule does not cover") as e:
        EXPLAINERS.get("deeplift")().explain(model, images(1), [0])
    msg = str(e.value)
    assert "\n" not in msg and first in msg and all(k in msg for k in kinds)
    assert "allow_unsupported: true" in msg
    # Allowed anyway: computed, and each map says how badly it breaks completeness.
    exp = EXPLAINERS.get("deeplift")({"allow_unsupported": True})
    x, t = images(4), torch.tensor([0, 1, 2, 3])
    maps = exp.explain(model, x, t)
    err = exp.pair_diagnostics(4)["completeness_error"]
    assert err.max() > 0.1 and completeness(model, maps, x, t) == pytest.approx(err.max(), rel=1e-3)
    found = exp.resolved["unsupported"]  # recorded in the run's manifest, named in its warnings
    assert len(found) == len(kinds) and all(any(k.startswith(kind) for k in found) for kind in kinds)
    assert first in found[kinds[0]]


class GeluNet(nn.Module):
    """Conv → GELU → conv → SiLU → mean → linear: no normalisation, no products."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 8, 3, 2, 1), nn.SiLU())
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.body(x).mean((2, 3)))


class GatedNet(GeluNet):
    """GeluNet with a squeeze-excitation gate: features × sigmoid(fc(pooled features))."""

    def __init__(self):
        super().__init__()
        self.se = nn.Linear(8, 8)

    def forward(self, x):
        f = self.body(x)
        gate = torch.sigmoid(self.se(f.mean((2, 3))))[:, :, None, None]
        return self.fc((f * gate).mean((2, 3)))


def test_deeplift_is_exact_on_gelu_silu_and_relu6_nets():
    """GELU and SiLU are element-wise: the Rescale rule covers them (Captum's DeepLift does
    not), so completeness holds to float precision; as on the ReLU6 control."""
    x, t = images(3), torch.tensor([0, 4, 9])
    for net in (GeluNet().eval(), mobilenet()):
        model = handle(net)
        exp = EXPLAINERS.get("deeplift")()
        maps = exp.explain(model, x, t)
        assert exp.resolved is None and completeness(model, maps, x, t) < 1e-4
        assert exp.pair_diagnostics(3)["completeness_error"].max() < 1e-4


def test_multiplicative_gates_are_named():
    with pytest.raises(ExplainerError, match=r"products of two activations \(gates, attention\) \(1 module: \(top level\)\)"):
        EXPLAINERS.get("deeplift")().explain(handle(GatedNet().eval()), images(1), [0])


@pytest.mark.parametrize("factory", [vit, hand_vit, swin, convnext])
def test_the_gelu_rule_is_applied_on_transformer_blocks(factory):
    """The README promises a rule for GELU: every GELU call of the blocks is intercepted."""
    net = factory()
    gelus = sum(isinstance(m, nn.GELU) for m in net.modules()) or len(getattr(getattr(net, "encoder", None), "layers", []))
    _, hits, _ = rule_gradients(handle(net), images(1), torch.tensor([0]), "guided")
    assert hits["gated"] == gelus > 0 and not hits["rectifier"]


def test_guided_maps_record_their_correlation_with_the_gradient():
    x, t = images(3), torch.tensor([0, 1, 2])
    for name in ("guided_backprop", "deconvolution", "guided_gradcam"):
        cnn = EXPLAINERS.get(name)()
        cnn.explain(handle(mobilenet()), x, t)
        r = cnn.pair_diagnostics(3)["gradient_correlation"]
        assert r.shape == (3,) and (r < 0.9).all(), name   # on the ReLU6 control the rule changes the map
    # A residual net whose only GELU sits on a branch of weight 1e-3: the rule is applied and
    # changes nothing measurable — exactly what the diagnostic must show.
    class Bypass(GeluNet):
        def forward(self, x):
            f = self.body[0](x)
            return self.fc((f + 1e-3 * self.body[1](f)).mean((2, 3))[:, :8])

    exp = EXPLAINERS.get("guided_backprop")()
    exp.explain(handle(Bypass().eval()), x, t)
    assert (exp.pair_diagnostics(3)["gradient_correlation"] > 0.99).all()
