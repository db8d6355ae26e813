"""Known answers of the perturbation methods (Occlusion, RISE, LIME, KernelSHAP) and XRAI's
region ranking, on hand-built models whose right answer is obvious."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from torch import nn

from xai_core.explainers import EXPLAINERS
from xai_core.explainers._segments import auto_segments, superpixels
from xai_core.explainers.occlusion import window_starts
from xai_core.explainers.rise import auto_grid, rise_masks
from xai_core.explainers.xrai import xrai_map

from handles import make_handle

SIZE, Q = 64, 32


class QuadrantNet(nn.Module):
    """Reads only the top-left quadrant: logit₀ = 8 · mean(TL pixels) − 3, logit₁ = −logit₀."""

    def forward(self, x):
        z = 8.0 * x[:, :, :Q, :Q].mean((1, 2, 3)) - 3.0
        return torch.stack([z, -z], 1)


@pytest.fixture(scope="module")
def quadrant():
    """The model and an image of four flat colour quadrants (bright top-left) with mild noise,
    so that superpixels follow the quadrant borders as they would follow object borders."""
    g = torch.Generator().manual_seed(0)
    img = torch.empty(3, SIZE, SIZE)
    colours = {(0, 0): (0.9, 0.8, 0.7), (0, 1): (0.2, 0.5, 0.8), (1, 0): (0.6, 0.2, 0.3), (1, 1): (0.3, 0.7, 0.3)}
    for (i, j), c in colours.items():
        img[:, i * Q:(i + 1) * Q, j * Q:(j + 1) * Q] = torch.tensor(c).view(3, 1, 1)
    img = (img + 0.03 * torch.randn(3, SIZE, SIZE, generator=g)).clamp(0, 1)
    return make_handle(QuadrantNet(), size=SIZE, classes=2), img


@pytest.mark.parametrize("name,params", [
    ("occlusion", {}),
    # RISE's bilinear masks blur by about one cell, so the mass leaking past the quadrant's
    # edges is ~ cell / quadrant side: 7 cells (the default) put only ~80 % inside, 12 put 85 %.
    ("rise", {"masks": 4000, "grid": 12}),
    ("lime", {"samples": 500}),
    ("kernel_shap", {"samples": 500}),
])
def test_positive_mass_in_the_quadrant_the_model_reads(quadrant, name, params):
    model, img = quadrant
    (m,) = EXPLAINERS.get(name)(params).explain_grouped(model, img[None], [[0]], batch_size=256)
    pos = m[0].clamp_min(0)
    share = float(pos[:Q, :Q].sum() / pos.sum())
    assert share >= 0.8, f"{name}: {share:.2f} of the positive mass in the top-left quadrant"


def test_kernel_shap_values_sum_to_the_score_difference(quadrant):
    model, img = quadrant
    ks = EXPLAINERS.get("kernel_shap")({"samples": 64})
    (m,) = ks.explain_grouped(model, img[None], [[0, 1]])
    seg = superpixels(img, "slic", 0)
    firsts = [np.argmax(seg.ravel() == s) for s in range(seg.max() + 1)]  # one pixel per superpixel
    phi = m.flatten(1)[:, firsts].sum(1)
    with torch.no_grad():
        gap = model.probs(img[None])[0] - model.probs(torch.zeros(1, 3, SIZE, SIZE))[0]
    torch.testing.assert_close(phi, gap, rtol=1e-4, atol=1e-5)


def test_occlusion_matches_captum_when_windows_tile_the_image(demo_model, demo_images):
    from captum.attr import Occlusion

    x = demo_images[:1]
    t = int(demo_model.predict(x).argmax())
    ours = EXPLAINERS.get("occlusion")({"window": 16, "stride": 16}).explain(demo_model, x, [t])
    ref = Occlusion(lambda z: demo_model.activate(demo_model.module(z))).attribute(
        x, sliding_window_shapes=(3, 16, 16), strides=(3, 16, 16), baselines=0.0, target=t)
    torch.testing.assert_close(ours, ref[:, 0], rtol=1e-4, atol=1e-6)


class ColumnNet(nn.Module):
    """logit = Σ x · (column index + 1): occluding a window drops it by the window's weights."""

    def forward(self, x):
        w = torch.arange(1.0, x.shape[-1] + 1.0)
        return (x * w).sum((1, 2, 3)).view(-1, 1)


def test_occlusion_border_window_is_full_size_and_averaged_like_the_others():
    """Side 11, window 4, stride 3: the stride grid is 0, 3, 6 (the last window ends at 9), so
    one more window flush with the border starts at 7; every pixel is the mean drop of the
    windows covering it. Captum instead starts a last window at 9, cut to 2 px by the border."""
    from captum.attr import Occlusion

    model = make_handle(ColumnNet(), size=11, classes=1)
    x = torch.ones(1, 3, 11, 11)
    occ = EXPLAINERS.get("occlusion")({"window": 4, "stride": 3, "output": "logit"})
    before = model.passes
    (m,) = occ.explain_grouped(model, x, [[0]])
    assert model.passes - before == 1 + 4 * 4  # (3 + 1) windows per axis, plus the unoccluded pass
    # Window drops: 3 channels · 4 rows · Σ weights of its 4 columns, by start column.
    drop = {x0: 12 * sum(range(x0 + 1, x0 + 5)) for x0 in (0, 3, 6, 7)}
    expect = [drop[0]] * 3 + [(drop[0] + drop[3]) / 2] + [drop[3]] * 2 + [(drop[3] + drop[6]) / 2] \
        + [(drop[6] + drop[7]) / 2] * 3 + [drop[7]]
    for row in m[0]:  # the drop does not depend on the rows, nor does the mean
        torch.testing.assert_close(row, torch.tensor(expect, dtype=torch.float32))
    ref = Occlusion(lambda z: ColumnNet()(z)).attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 3, 3),
                                                        baselines=0.0, target=0)
    assert float(ref[0, 0, 0, 10]) == pytest.approx(12 * (10 + 11))  # Captum: a window cut to 2 px
    assert float(m[0, 0, 10]) == pytest.approx(drop[7])


def test_rise_equals_a_plain_per_image_loop_over_the_same_masks(quadrant):
    model, img = quadrant
    n, grid = 200, 4  # fewer than one chunk of masks (MASK_CHUNK)
    rise = EXPLAINERS.get("rise")({"masks": n, "grid": grid, "center": False})
    (m,) = rise.explain_grouped(model, img[None], [[1, 0]])
    masks = rise_masks(0, 0, n, SIZE, SIZE, grid, 0.5)
    with torch.no_grad():
        p = model.probs(img * masks)                     # (n, 2)
    ref = torch.einsum("nk,nhw->khw", p, masks[:, 0]) / (n * 0.5)
    torch.testing.assert_close(m, ref[[1, 0]], rtol=1e-4, atol=1e-6)


def test_one_pass_per_perturbation_serves_every_label(quadrant):
    model, img = quadrant
    for name, params, passes in [("occlusion", {"window": 16, "stride": 16}, 1 + 16),
                                 ("rise", {"masks": 40}, 40),
                                 ("lime", {"samples": 30}, 30),
                                 ("kernel_shap", {"samples": 30}, 32)]:
        before = model.passes
        EXPLAINERS.get(name)(params).explain_grouped(model, img[None], [[0, 1]])
        assert model.passes - before == passes, name


def test_auto_parameters_scale_with_the_image():
    occ = EXPLAINERS.get("occlusion")()
    assert occ.geometry(224, 224) == (15, 8)
    assert occ.geometry(64, 64) == (4, 2)
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]  # last window flush with the border
    assert auto_grid(224) == 7 and auto_grid(64) == 7 and auto_grid(16) == 4
    assert auto_segments(224, 224) == 100 and auto_segments(32, 32) == 16


def test_xrai_adds_the_densest_region_first():
    attr = np.array([5.0, 5.0, 1.0, 1.0, 0.0, 0.0, -1.0, 9.0])
    regions = sparse.csc_matrix(np.array([
        [1, 1, 0, 0, 0, 0, 0, 0],   # density 5
        [0, 1, 1, 1, 0, 0, 0, 0],   # density 7/3, then 1 once pixel 1 is taken
        [0, 0, 0, 0, 1, 1, 1, 1],   # density 2: second
    ], dtype=float))
    out = xrai_map(attr, regions, min_pixel_diff=1)
    np.testing.assert_allclose(out, [5, 5, 1, 1, 2, 2, 2, 2])
    # Regions adding fewer than min_pixel_diff new pixels are dropped; pixels no region adds
    # get their own mean attribution.
    out = xrai_map(attr, regions, min_pixel_diff=3)
    np.testing.assert_allclose(out, [5, 7 / 3, 7 / 3, 7 / 3, 2, 2, 2, 2])
