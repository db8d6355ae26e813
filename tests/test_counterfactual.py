"""Hierarchical occlusion counterfactuals on a model that reads only the top-left quadrant."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from xai_core.counterfactual import (candidate_windows, default_blur_sigma, gaussian_blur,
                                     hierarchical_occlusion, layer_sides)
from xai_core.errors import ExplainerError
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel

SIZE = 64
Q = SIZE // 2  # the quadrant the model reads: x, y in [0, Q)


class QuadrantNet(nn.Module):
    """Class 0: logit = 30 · (fine-texture energy of the top-left quadrant − 0.13); class 1 is
    its negation. Energy = mean |finite difference| in x and y: about 0.27 on the test scenes,
    0.02 once blurred, so p(0) ≈ 0.98 on the image and ≈ 0.03 on its blurred copy, and
    p(0) > 0.5 needs roughly half the quadrant's texture back."""

    def forward(self, x):
        q = x[:, :, : x.shape[2] // 2, : x.shape[3] // 2]
        e = (q[:, :, 1:] - q[:, :, :-1]).abs().mean((1, 2, 3)) + (q[..., 1:] - q[..., :-1]).abs().mean((1, 2, 3))
        logit = 30.0 * (e - 0.13)
        return torch.stack([logit, -logit], 1)


class Twin(QuadrantNet):
    """Two identical copies of class 0, to see the searches of two labels share passes."""

    def forward(self, x):
        logit = super().forward(x)[:, :1]
        return torch.cat([logit, logit], 1)


def handle(net, k=2):
    return ClassifierHandle(PixelSpaceModel(net.eval(), [0.0] * 3, [1.0] * 3), "sigmoid", (SIZE, SIZE), k)


def scenes(n, seed=0, amp=0.2):
    """Smooth colour blobs plus fine noise in every quadrant (the model reads one of them)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(n, 3, 6, 6, generator=g), size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    x = base * (1 - 2 * amp) + amp + amp * (2 * torch.rand(n, 3, SIZE, SIZE, generator=g) - 1)
    return x.clamp(0, 1)


def inside(box, outer):
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


def paste(image, boxes):
    out = gaussian_blur(image[None], default_blur_sigma(SIZE, SIZE))[0]
    for x0, y0, x1, y1 in boxes:
        out[:, y0:y1, x0:x1] = image[:, y0:y1, x0:x1]
    return out


def test_windows_stay_in_the_quadrant_the_model_reads_and_nest_by_layer():
    model = handle(QuadrantNet())
    x = scenes(2)
    res = hierarchical_occlusion(model, x, [[0, 1], [0]], threshold=0.5, layers=3)
    assert res[0][1] is None  # class 1 has p ≈ 0.02 on the image: nothing to keep
    for cf in (res[0][0], res[1][0]):
        assert cf.found and cf.prob > 0.9 and cf.blurred_prob < 0.5
        assert [l["side"] for l in cf.layers] == [32, 16, 8]
        # One 32-px window fits the quadrant exactly and restores all of it.
        assert cf.layers[0]["boxes"] == [[0, 0, Q, Q]]
        for outer, inner in zip(cf.layers, cf.layers[1:]):
            assert all(any(inside(b, o) for o in outer["boxes"]) for b in inner["boxes"])
        for layer in cf.layers:
            assert layer["prob"] >= 0.5
            assert all(inside(b, (0, 0, Q, Q)) for b in layer["boxes"])
    # The stored probability is that of the blurred image with exactly those boxes pasted back.
    last = res[1][0].layers[-1]
    p = model.predict(paste(x[1], last["boxes"])[None])[0, 0]
    assert abs(float(p) - last["prob"]) < 1e-5


def test_each_pair_equals_its_search_alone_and_labels_share_identical_composites():
    x = scenes(2, seed=1)
    together = hierarchical_occlusion(handle(QuadrantNet()), x, [[0], [0]], layers=2)
    alone = hierarchical_occlusion(handle(QuadrantNet()), x[1:], [[0]], layers=2)
    assert together[1][0].layers == alone[0][0].layers

    one, two = handle(Twin()), handle(Twin())
    a = hierarchical_occlusion(one, x[:1], [[0]], layers=2)
    b = hierarchical_occlusion(two, x[:1], [[0, 1]], layers=2)
    assert b[0][0].layers == b[0][1].layers == a[0][0].layers
    assert two.passes == one.passes  # every composite of label 1 is label 0's: evaluated once


def test_nothing_to_search_when_the_blurred_image_keeps_the_label():
    class Always(nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 2), 3.0)

    model = handle(Always())
    res = hierarchical_occlusion(model, scenes(1), [[0]])
    cf = res[0][0]
    assert cf.layers == [] and cf.found and cf.blurred_prob > 0.5
    assert model.passes == 2  # the image and its blurred copy, nothing else


def test_window_geometry_follows_mindspore():
    assert layer_sides(64, 64) == [32, 16, 8]
    assert layer_sides(224, 224) == [112, 56, 28]  # MindSpore stops below 28 px at 224 px
    assert layer_sides(64, 48, layers=5, min_side=6) == [24, 12, 6]
    wins = candidate_windows((0, 0, 64, 64), 32, 6)
    starts = sorted({w[0] for w in wins})
    assert starts == [0, 6, 12, 18, 24, 30, 32]  # stride side/5, plus one flush with the edge
    assert len(wins) == 49


def test_blur_keeps_constants_and_means():
    flat = torch.full((1, 3, 20, 24), 0.3)
    assert float((gaussian_blur(flat, 4.0) - flat).abs().max()) < 1e-6  # weights sum to 1, reflect padding
    x = scenes(1)
    b = gaussian_blur(x, 5.0)
    assert abs(float(b.mean() - x.mean())) < 0.01 and float(b.std()) < float(x.std())


def test_mismatched_targets_are_a_typed_error():
    with pytest.raises(ExplainerError, match="target lists"):
        hierarchical_occlusion(handle(QuadrantNet()), scenes(2), [[0]])
