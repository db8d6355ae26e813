"""Anchors on a model that reads only the top-left quadrant; KL bounds; budget; batching."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_core.errors import ConfigError
from xai_core.explainers import EXPLAINERS
from xai_core.explainers._anchor_search import _kl, kl_lower, kl_upper
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel

SIZE = 64
Q = SIZE // 2


class QuadrantNet(nn.Module):
    """Class 0: logit = 30 · (fine-texture energy of the top-left quadrant − 0.13), class 1 its
    negation (see tests/test_counterfactual.py): p(0) > 0.5 needs about half of that quadrant's
    texture; replacing superpixels by their blurred copy erases their texture."""

    def forward(self, x):
        q = x[:, :, : x.shape[2] // 2, : x.shape[3] // 2]
        e = (q[:, :, 1:] - q[:, :, :-1]).abs().mean((1, 2, 3)) + (q[..., 1:] - q[..., :-1]).abs().mean((1, 2, 3))
        logit = 30.0 * (e - 0.13)
        return torch.stack([logit, -logit], 1)


class Constant(nn.Module):
    def forward(self, x):
        return torch.tensor([[3.0, -3.0]]).expand(x.shape[0], 2)


def handle(net, activation="sigmoid"):
    return ClassifierHandle(PixelSpaceModel(net.eval(), [0.0] * 3, [1.0] * 3), activation, (SIZE, SIZE), 2)


def scenes(n, seed=0, amp=0.2):
    """Smooth colour blobs (which SLIC follows) plus fine noise (which the model reads)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    x = base * (1 - 2 * amp) + amp + amp * (2 * torch.rand(n, 3, SIZE, SIZE, generator=g) - 1)
    return x.clamp(0, 1)


def anchors(**params):
    return EXPLAINERS.get("anchors")(params)


@pytest.fixture(scope="module")
def quadrant_run():
    model = handle(QuadrantNet())
    exp = anchors()
    x = scenes(2)
    maps = exp.explain_grouped(model, x, [[0, 1], [0]])
    return model, exp, x, maps


def test_anchor_is_made_of_the_quadrant_the_model_reads_with_precision(quadrant_run):
    model, exp, x, maps = quadrant_run
    assert [m.shape for m in maps] == [(2, SIZE, SIZE), (1, SIZE, SIZE)]
    details = exp.last_details
    assert [(d["label"], d["predicted"]) for d in details] == [(0, True), (1, False), (0, True)]
    for d, img, m in zip(details, (0, 0, 1), (maps[0][0], maps[0][1], maps[1][0])):
        seg = exp.last_segments[img]
        assert d["found"] and d["precision"] >= 0.95 and d["anchor"]
        assert d["coverage"] == pytest.approx(0.5 ** len(d["anchor"]))
        assert d["passes"] <= 3000
        mask = np.isin(seg, d["anchor"])
        assert torch.equal(m, torch.from_numpy(mask.astype(np.float32)))
        # Every anchor superpixel reaches into the quadrant; most of the anchor lies in it.
        assert all((seg[:Q, :Q] == f).any() for f in d["anchor"])
        assert mask[:Q, :Q].sum() >= 0.75 * mask.sum()


def test_the_anchor_really_holds_the_decision(quadrant_run):
    # Re-estimate the precision independently: keep the anchor, replace each other superpixel
    # by its blurred copy with probability 1/2, and count kept decisions. Acceptance (mean ≥
    # 0.95, lower bound ≥ 0.90 at confidence 1 − δ) guarantees ~0.90; the empty anchor is ~0.5.
    model, exp, x, _ = quadrant_run
    d, seg = exp.last_details[2], exp.last_segments[1]
    fill = exp.fill_image(x[1], seg)
    rng = np.random.default_rng(7)
    z = rng.random((400, seg.max() + 1)) >= 0.5
    z[:, d["anchor"]] = True
    keep = torch.from_numpy(z[:, seg])[:, None]
    p = model.predict(torch.where(keep, x[1], fill))[:, 0]
    assert float((p > 0.5).float().mean()) >= 0.85


def test_a_decision_nothing_changes_has_the_empty_anchor_for_few_passes():
    model = handle(Constant())
    exp = anchors(initial_samples=32)
    maps = exp.explain_grouped(model, scenes(1), [[0, 1]])
    assert float(maps[0].abs().sum()) == 0.0
    for d in exp.last_details:
        assert d["anchor"] == [] and d["found"] and d["precision"] == 1.0 and d["coverage"] == 1.0
        assert d["passes"] == 0  # decided by the 32 shared samples alone
    assert model.passes == 1 + 32


def test_labels_with_the_same_decisions_share_every_pass():
    class Twin(QuadrantNet):
        def forward(self, x):
            logit = super().forward(x)[:, :1]
            return torch.cat([logit, logit], 1)

    x = scenes(1, seed=2)
    one, two = handle(Twin()), handle(Twin())
    a, b = anchors(max_passes=600), anchors(max_passes=600)
    a.explain_grouped(one, x, [[0]])
    b.explain_grouped(two, x, [[0, 1]])
    first, second = ({k: v for k, v in d.items() if k != "label"} for d in b.last_details)
    alone = {k: v for k, v in a.last_details[0].items() if k != "label"}
    assert first == second == alone
    assert two.passes == one.passes  # the second label's samples are the first one's streams


def test_results_do_not_depend_on_batch_neighbours_and_are_seeded():
    x = scenes(2, seed=3)
    a, b = anchors(max_passes=300), anchors(max_passes=300)
    a.explain_grouped(handle(QuadrantNet()), x, [[0], [0]], batch_size=16)
    b.explain_grouped(handle(QuadrantNet()), x[1:], [[0]], batch_size=64)
    assert a.last_details[1] == b.last_details[0]
    c = anchors(max_passes=300, seed=1)
    c.explain_grouped(handle(QuadrantNet()), x[1:], [[0]])
    assert c.last_details[0] != b.last_details[0]  # another seed, other draws


def test_budget_is_respected_and_pairs_api_works():
    model = handle(QuadrantNet())
    exp = anchors(max_passes=100, fill="mean")
    maps = exp.explain(model, scenes(2, seed=5), torch.tensor([0, 0]), batch_size=1)
    assert maps.shape == (2, SIZE, SIZE)
    assert len(exp.last_details) == len(exp.last_segments) == 2  # both chunks kept
    assert all(d["passes"] <= 100 for d in exp.last_details)
    assert exp.diagnostics["passes"] == pytest.approx(np.mean([d["passes"] for d in exp.last_details]))
    assert set(np.unique(maps.numpy())) <= {0.0, 1.0}


def test_softmax_model_and_a_constant_fill():
    model = handle(QuadrantNet(), activation="softmax")
    exp = anchors(fill="constant", fill_value=0.5)
    exp.explain_grouped(model, scenes(1), [[0]])
    d = exp.last_details[0]
    assert d["predicted"] and d["found"] and d["precision"] >= 0.95


def test_kl_bounds_solve_the_kl_equation():
    p = np.array([0.0, 0.3, 0.9, 1.0])
    level = np.array([0.1, 0.05, 0.2, 0.3])
    up, lo = kl_upper(p, level), kl_lower(p, level)
    assert (lo <= p).all() and (p <= up).all()
    inner = (p > 0) & (p < 1)
    np.testing.assert_allclose(_kl(p[inner], up[inner]), level[inner], rtol=1e-3)
    np.testing.assert_allclose(_kl(p[inner], lo[inner]), level[inner], rtol=1e-3)
    assert lo[3] == pytest.approx(math.exp(-0.3), abs=1e-4)  # KL(1 ‖ q) = −log q


def test_registered_with_metadata_and_checked_params():
    cls = EXPLAINERS.get("anchors")
    meta = cls.metadata()
    assert meta["needs_gradients"] is False and meta["signed"] is False
    assert meta["params"]["precision"] == 0.95 and meta["params"]["beam_size"] == 2
    with pytest.raises(ConfigError, match="fill"):
        anchors(fill="noise")
