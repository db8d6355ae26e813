"""Every explainer, every metric, MC dropout, TTA, counterfactuals, the sanity check and a
whole part of a run keep the device rules (xai_core/devices.py), checked on a simulated
accelerator (tests/device_sim.py): nothing mixes device and host tensors, nothing converts a
device tensor to numpy, no host round trip falls between two model passes of one call (except
the one crossing per round of the adaptive searches), results come back on the caller's
device — and the numbers equal the CPU's bit for bit, so a device takes no other code path.

Registry-driven: an explainer or metric registered later (attention explainers, token CAMs)
is covered as it is registered.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from device_sim import DeviceRuleError, SimulatedDevice, on_device, plain, simulated_handle, wrap
from xai_core.explainers import EXPLAINERS
from xai_core.metrics import METRICS
from xai_core.metrics.base import MetricContext
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel
from xai_core.models.zoo import resnet_small

SIDE = 32
# Crossings to the host that adaptive searches make once per round of passes (the search
# itself is host code): where, in the sync log, they may fall between passes.
PER_ROUND = {"anchors": {"_serve", "_decisions"}}
# Crossings once per model, before its first explanation: the CAM family's layer resolution on
# a transformer reads which token outputs reach the logits (one crossing, then cached per
# model), so the second call on the same model may make none; the attention explainers' readout
# probe likewise reads which token rows reach the logits (explainers/_tokens.py: readout_rows).
ONCE = {"last_spatial_layer", "layer_layout", "readout_rows"}


def _resnet() -> ClassifierHandle:
    return ClassifierHandle(PixelSpaceModel(resnet_small(num_classes=3), [0.4] * 3, [0.25] * 3), "sigmoid",
                            (SIDE, SIDE), 3)


@pytest.fixture(scope="module")
def model():
    return _resnet()


@pytest.fixture(scope="module")
def images():
    from toy import make_dataset  # noqa: F401 (the toy images: squares on grey noise)

    return torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(3))


def _functions(events) -> set[str]:
    return {e[2].split("(")[-1].rstrip(")") for e in events}


def _check_syncs(dev: SimulatedDevice, allowed: set[str], what: str, start: int = 0) -> None:
    between = dev.syncs_between_passes(start)
    bad = [e for e in between if e[2].split("(")[-1].rstrip(")") not in allowed]
    assert not bad, f"{what}: host round trips between model passes: {bad[:5]}"


def _vit(name: str) -> ClassifierHandle:
    from archs import ARCHITECTURES  # tests/archs.py: the small transformers of issue 16

    return ClassifierHandle(PixelSpaceModel(ARCHITECTURES[name]().eval(), [0.0] * 3, [1.0] * 3), "sigmoid",
                            (SIDE, SIDE), 10)


# Attention explainers read a transformer's attention; the CAM family reshapes its tokens:
# both are checked on the two small ViTs (nn.TransformerEncoder, hand-written attention).
ON_VITS = {c.name for c in EXPLAINERS if c.needs_attention} | {"gradcam", "gradcam_pp", "guided_gradcam"}
CASES = ([(c, "resnet") for c in EXPLAINERS if not c.needs_attention]
         + [(c, arch) for c in EXPLAINERS if c.name in ON_VITS for arch in ("vit", "hand_vit")])


@pytest.mark.parametrize("cls,arch", CASES, ids=lambda v: v if isinstance(v, str) else v.name)
def test_explainer_keeps_the_device_rules(cls, arch, model, images):
    model = model if arch == "resnet" else _vit(arch)
    exp = cls(dict(cls.smoke_params))
    labels = [[0, 1], [2]]
    ref_grouped = exp.explain_grouped(model, images, labels, batch_size=4)
    pairs_x, pairs_t = torch.stack([images[0], images[1], images[0]]), [2, 0, 1]
    ref_pairs = exp.explain(model, pairs_x, pairs_t, batch_size=4)

    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    allowed = PER_ROUND.get(cls.name, set())
    with dev:
        grouped = exp.explain_grouped(sim, wrap(images.clone()), labels, batch_size=4)
        _check_syncs(dev, allowed | ONCE, f"{cls.name}.explain_grouped")
        start = len(dev.events)
        pairs = exp.explain(sim, wrap(pairs_x.clone()), wrap(torch.tensor(pairs_t)), batch_size=4)
        _check_syncs(dev, allowed, f"{cls.name}.explain", start)
        from_host = exp.explain(sim, pairs_x.clone(), pairs_t, batch_size=4)  # host images in, host maps out
    assert all(on_device(m) for m in grouped) and on_device(pairs), "maps return on the caller's device"
    assert not on_device(from_host)
    for got, want in zip(grouped, ref_grouped):
        assert torch.equal(plain(got), want), f"{cls.name}: grouped maps differ on the device"
    assert torch.equal(plain(pairs), ref_pairs) and torch.equal(from_host, ref_pairs), f"{cls.name}: pair maps differ"
    if cls.needs_gradients or cls.name != "random":
        assert dev.passes > 0


def _metric_context(model, images, explain, maps, **over):
    p = maps.shape[0]
    masks = np.zeros((p, SIDE, SIDE), bool)
    masks[:, 8:20, 6:18] = True
    return MetricContext(model, images, torch.tensor([0, 2, 1][:p]), maps, masks=masks,
                         has_mask=np.ones(p, bool), is_ground_truth=np.ones(p, bool), explain=explain,
                         batch_size=4, seed=0, **over)


@pytest.mark.parametrize("cls", list(METRICS), ids=lambda c: c.name)
def test_metric_keeps_the_device_rules(cls, model, images):
    params = {"deletion_auc": {"steps": 5}, "insertion_auc": {"steps": 5}, "naive_faithfulness": {"chunks": 4},
              "road_morf": {"fractions": [0.3, 0.6]}, "road_lerf": {"fractions": [0.3, 0.6]},
              "max_sensitivity": {"samples": 2}, "avg_sensitivity": {"samples": 2},
              "infidelity": {"samples": 4}}.get(cls.name, {})
    metric = cls(params)
    explainer = EXPLAINERS.get("smoothgrad")({"samples": 2})  # seeded by content: host copies
    x = torch.stack([images[0], images[1], images[0]])
    maps = explainer.explain(model, x, [0, 2, 1], batch_size=4)
    with torch.no_grad():
        probs = model.predict(x)

    def ctx_for(m, imgs, pr):
        def explain(a, t):
            return explainer.explain(m, a, t, batch_size=4)
        if cls.label_agnostic:
            return MetricContext(m, imgs[:2], torch.tensor([0, 2]), None, explain=explain, batch_size=4, seed=0,
                                 probs=pr[:2])
        return _metric_context(m, imgs, explain, maps, probs=pr)

    want = np.asarray(metric.evaluate(ctx_for(model, x, probs)))
    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    with dev:
        ctx = ctx_for(sim, wrap(x.clone()), wrap(probs.clone()))
        got = np.asarray(metric.evaluate(ctx))
        # A metric that re-explains calls `explain` per batch of pairs: each call validates its
        # targets and takes its host copy once, before its own passes.
        allowed = {"check_pairs", "host_copy"} if "explainer" in cls.needs else set()
        _check_syncs(dev, allowed, cls.name)
    assert got.dtype.kind == "f" and got.shape == want.shape
    np.testing.assert_array_equal(got, want, err_msg=f"{cls.name}: values differ on the device")


def test_mc_dropout_and_tta_keep_the_device_rules(model, images):
    from xai_core.uncertainty import mc_dropout

    kw = dict(passes=3, dropout=0.2, tta_shift=1, tta_noise=0.05, seed=4, batch_size=2)
    want = mc_dropout(model, images, **kw)
    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    with dev:
        got = mc_dropout(sim, wrap(images.clone()), **kw)
        _check_syncs(dev, set(), "mc_dropout")
    for f in ("prob", "mean", "std", "lo", "hi"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)


def test_counterfactual_search_crosses_once_per_greedy_step():
    from toy import colour_net
    from xai_core.counterfactual import hierarchical_occlusion

    # ColourNet (tests/toy.py) at std 1.5: its blurred squares fall below the threshold.
    model = ClassifierHandle(PixelSpaceModel(colour_net(), [0.0] * 3, [1.5] * 3), "sigmoid", (SIDE, SIDE), 3)
    x = torch.full((2, 3, SIDE, SIDE), 0.4)
    x[0, :, 4:12, 4:12] = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    x[1, :, 16:24, 10:18] = torch.tensor([0, 0, 1.0]).view(3, 1, 1)
    want = hierarchical_occlusion(model, x, [[0], [2]], layers=2, batch_size=16)
    assert all(cf is not None and cf.layers for per in want for cf in per), "the toy search should run"
    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    with dev:
        got = hierarchical_occlusion(sim, wrap(x.clone()), [[0], [2]], layers=2, batch_size=16)
    between = dev.syncs_between_passes()
    assert _functions(between) <= {"_evaluate", "hierarchical_occlusion"}, between
    steps = sum(len(layer["boxes"]) for per in want for cf in per for layer in cf.layers)
    assert len([e for e in between if "_evaluate" in e[2]]) <= steps, "one crossing per greedy step at most"
    assert [[cf.to_dict() for cf in per] for per in got] == [[cf.to_dict() for cf in per] for per in want]


@pytest.mark.parametrize("name", ["gradient", "occlusion"])
def test_sanity_check_randomises_to_the_same_weights_on_a_device(name, model, images):
    from xai_core.sanity import randomisation_check

    exp = EXPLAINERS.get(name)(dict(EXPLAINERS.get(name).smoke_params))
    want = randomisation_check(model, exp, images, [0, 2], seed=5, max_steps=4, batch_size=4)
    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    with dev:
        got = randomisation_check(sim, exp, wrap(images.clone()), wrap(torch.tensor([0, 2])), seed=5,
                                  max_steps=4, batch_size=4)
    assert got == want


def test_a_whole_part_computes_the_cpu_numbers_on_a_device(toy_data, tmp_path):
    from test_golden_cpu import golden_config

    from xai_core.config import config_from_dict
    from xai_core.engine import RunContext, compute_part

    raw = golden_config(toy_data, tmp_path / "run", "toy")
    raw["explainers"] = [e for e in raw["explainers"] if e["type"] in ("gradient", "occlusion", "rise", "anchors",
                                                                      "integrated_gradients", "lime")]
    raw["metrics"] = [m for m in raw["metrics"] if m["type"] in ("deletion_auc", "insertion_auc", "pointing_game",
                                                                 "road_morf", "max_sensitivity", "sparseness")]
    cfg = config_from_dict(raw)
    ctx = RunContext.build(cfg)
    want = compute_part(ctx, 0, [0, 1, 2])
    dev = SimulatedDevice()
    ctx.model = simulated_handle(ctx.model, dev)
    with dev:
        got = compute_part(ctx, 0, [0, 1, 2])
    assert dev.passes > 0
    for key in ("samples", "labels", "scores", "details", "counterfactuals"):
        assert _same(got[key], want[key]), key
    for name, arr in want["saliency"].items():
        np.testing.assert_array_equal(got["saliency"][name], arr, err_msg=name)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN (scores of pairs a metric does not apply to)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


# ---- the simulation itself can fail -----------------------------------------------------
def test_the_simulated_device_catches_what_cuda_would_refuse(model, images):
    dev = SimulatedDevice()
    sim = simulated_handle(model, dev)
    x = wrap(images.clone())
    with dev:
        with pytest.raises(DeviceRuleError, match="same device"):
            torch.zeros(2, 3) + sim(x)[:, :3].repeat(1, 1)[:2]  # a host tensor of 2 × 3 meets device logits
        with pytest.raises(DeviceRuleError, match="numpy"):
            sim.probs(x).numpy()
        with pytest.raises(DeviceRuleError, match="CPU generator"):
            torch.rand(3, generator=torch.Generator().manual_seed(0), device=x.device)
        out = []
        for i in range(2):  # the per-pass round trip the rules forbid
            out.append(float(sim.probs(x[i: i + 1])[0, 0]))
        made = torch.zeros(1, device=x.device)
    assert [e[1] for e in dev.syncs_between_passes()] == ["__float__"]
    assert on_device(made) and plain(made).device.type == "cpu"
