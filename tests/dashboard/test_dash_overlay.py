"""Display normalisation of raw maps: polarity, clipping, shared scales, blending."""

import io

import numpy as np
import pytest
from PIL import Image

from xai_core.dashboard.overlay import (OverlayStyle, clip_value, colormap_lut, normalised, png_bytes, polarised,
                                        render, scale_values, upscale_factor)
from xai_core.errors import XaiError

S = np.array([[-2.0, -1.0], [0.0, 4.0]], np.float32)


@pytest.mark.parametrize("polarity, expected", [
    ("positive", [[0, 0], [0, 4]]), ("negative", [[2, 1], [0, 0]]),
    ("absolute", [[2, 1], [0, 4]]), ("signed", [[-2, -1], [0, 4]])])
def test_polarity(polarity, expected):
    np.testing.assert_array_equal(polarised(S, polarity), expected)


def test_clip_value_is_a_percentile_of_magnitudes():
    m = np.arange(101, dtype=np.float32).reshape(1, -1)
    assert clip_value([m], OverlayStyle(clip_percentile=90)) == pytest.approx(90.0)
    assert clip_value([-m], OverlayStyle(polarity="signed", clip_percentile=100)) == pytest.approx(100.0)
    sparse = np.zeros((10, 10), np.float32)
    sparse[0, 0] = 3.0  # the 99th percentile is 0: fall back to the max
    assert clip_value([sparse], OverlayStyle(clip_percentile=90)) == 3.0
    assert clip_value([np.zeros((2, 2))], OverlayStyle()) == 0.0


def test_signed_maps_centre_zero_on_the_diverging_map():
    style = OverlayStyle(polarity="signed")
    np.testing.assert_allclose(normalised(S, 2.0, style), [[0.0, 0.25], [0.5, 1.0]])
    assert style.colormap == "RdBu_r"
    np.testing.assert_allclose(normalised(S, 2.0, OverlayStyle(polarity="absolute")), [[1, 0.5], [0, 1]])
    np.testing.assert_array_equal(normalised(S, 0.0, OverlayStyle()), 0.0)


def test_shared_scales_versus_one_per_map():
    maps = {1: ("a", np.full((2, 2), 1.0)), 2: ("a", np.full((2, 2), 3.0)), 3: ("b", np.full((2, 2), 100.0))}
    p100 = dict(clip_percentile=100)
    assert scale_values(maps, OverlayStyle(scale="map", **p100)) == {1: 1.0, 2: 3.0, 3: 100.0}
    assert scale_values(maps, OverlayStyle(scale="explainer", **p100)) == {1: 3.0, 2: 3.0, 3: 100.0}
    assert scale_values(maps, OverlayStyle(scale="all", **p100)) == {1: 100.0, 2: 100.0, 3: 100.0}


def test_render_blends_with_opacity_and_upscales():
    img = np.full((2, 2, 3), 200, np.uint8)
    m = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    lut = colormap_lut("inferno")
    off = render(img, m, 1.0, OverlayStyle(overlay=False))
    np.testing.assert_array_equal(off[0, 0], lut[0])
    np.testing.assert_array_equal(off[0, 1], lut[255])
    on = render(img, m, 1.0, OverlayStyle(overlay=True, opacity=0.25))
    np.testing.assert_allclose(on[0, 1], 0.75 * 200 + 0.25 * lut[255].astype(float), atol=1)
    big = render(img, m, 1.0, OverlayStyle(), upscale=3)
    assert big.shape == (6, 6, 3) and (big[:3, 3:] == big[0, 3]).all()
    # a map at another resolution is resized to the image
    assert render(np.zeros((4, 4, 3), np.uint8), m, 1.0, OverlayStyle()).shape == (4, 4, 3)


def test_png_round_trip_and_upscale_factor():
    rgb = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))), rgb)
    assert (upscale_factor(32, 32), upscale_factor(64, 64), upscale_factor(224, 224)) == (4, 2, 1)


@pytest.mark.parametrize("bad", [dict(polarity="up"), dict(scale="x"), dict(opacity=1.5), dict(clip_percentile=0)])
def test_invalid_style(bad):
    with pytest.raises(XaiError):
        OverlayStyle(**bad)


def test_unknown_colour_map():
    with pytest.raises(XaiError, match="colour map"):
        colormap_lut("no-such-map")


def test_legend_gives_the_colour_bar_and_its_ends():
    from PIL import Image
    import io

    from xai_core.dashboard.legend import legend

    lg = legend(OverlayStyle(), [0.5, 0.5])
    assert (lg.low, lg.high, lg.ends) == (0.0, 0.5, "0 … 0.5")
    bar = np.asarray(Image.open(io.BytesIO(lg.bar)))
    assert bar.shape[1] > bar.shape[0] and (bar[0, 0] != bar[0, -1]).any()     # a horizontal colour ramp
    signed = legend(OverlayStyle(polarity="signed"), [2.0], signed_maps=False)
    assert (signed.low, signed.high) == (-2.0, 2.0) and "middle colour is 0" in signed.text
    assert "never negative" in signed.text
    per_map = legend(OverlayStyle(scale="map"), [0.1, 0.3])
    assert per_map.high is None and per_map.ends == "0 … each map's max" and "own scale" in per_map.text


# ---- issue 18 item 4: Vertex XAI's display options -------------------------------------------
from xai_core.dashboard.legend import legend  # noqa: E402
from xai_core.dashboard.overlay import (OUTLINE_CLIP, PINK_GREEN, boundary, draw_outlines, floor_value,  # noqa: E402
                                        mass_threshold, region_masks)


def test_mass_threshold_encloses_the_share_of_the_mass():
    v = np.array([5.0, 3.0, 1.0, 1.0, 0.0])                  # total 10
    assert mass_threshold(v, 50) == 5.0                       # 5 alone is half the mass
    assert mass_threshold(v, 80) == 3.0                       # 5 + 3
    assert mass_threshold(v, 85) == 1.0 and mass_threshold(v, 100) == 1.0
    assert mass_threshold(np.zeros(4), 50) == float("inf")    # no mass: no region


def test_outline_region_holds_the_mass_and_ignores_specks():
    m = np.zeros((40, 40), np.float32)
    m[10:20, 10:20] = 1.0                                     # 100 pixels holding 96 % of the mass
    m[30, 30] = 4.0                                           # one bright speck (4 %)
    style = OverlayStyle(display="outlines", clip_low=0.0, clip_percentile=100.0, outline_mass=50.0)
    (region, where), = region_masks(m, 4.0, style)
    assert where == 1.0 and not region[30, 30]                # a speck, not a region
    assert region[12:18, 12:18].all() and region.sum() < 200 and not region[:5].any()
    drawn = draw_outlines(np.zeros((40, 40, 3), np.uint8), m, 4.0, style, upscale=2)
    assert drawn.shape == (80, 80, 3)
    on = (drawn != 0).any(-1)
    column = np.flatnonzero(on[:, 30])                        # through the blob's middle, upscaled ×2
    assert len(column) == 2 and 18 <= column[0] < column[1] <= 40 and not on[30, 30]   # a hollow contour
    assert not on[58:64, 58:64].any()                         # no outline around the speck
    assert (drawn[on] == colormap_lut(style.colormap)[255]).all()   # the top colour of the map


def test_signed_outlines_draw_both_parts_in_their_end_colours():
    m = np.zeros((30, 30), np.float32)
    m[3:12, 3:12], m[18:27, 18:27] = 1.0, -1.0
    style = OverlayStyle(display="outlines", polarity="signed", diverging_cmap=PINK_GREEN, clip_low=0.0)
    parts = region_masks(m, 1.0, style)
    assert [w for _, w in parts] == [1.0, 0.0]
    assert parts[0][0][7, 7] and not parts[0][0][22, 22] and parts[1][0][22, 22]
    out = draw_outlines(None, m, 1.0, style)
    colours = {tuple(c) for c in out.reshape(-1, 3) if c.any()}
    assert colours == {(0, 230, 118), (255, 20, 147)}         # + green, − pink (Vertex's pink-green)


def test_clip_range_lower_bound_leaves_the_image_visible():
    rng = np.random.default_rng(0)
    m = rng.random((16, 16)).astype(np.float32)
    img = np.full((16, 16, 3), 200, np.uint8)
    style = OverlayStyle(clip_low=62.0, clip_percentile=99.9)
    low = floor_value(m, style)
    assert low == pytest.approx(np.percentile(m, 62.0))
    out = render(img, m, clip_value([m], style), style)
    below = m < low
    assert (out[below] == 200).all() and (out[~below] != 200).any(-1).all()
    assert 0.55 < below.mean() < 0.7
    assert floor_value(m, OverlayStyle()) == 0.0              # the heat-map default excludes nothing
    assert OUTLINE_CLIP == (62.0, 99.9)                       # Vertex's defaults for Integrated Gradients


def test_pink_green_colour_map_follows_the_polarity():
    assert tuple(colormap_lut(PINK_GREEN)[0]) == (255, 20, 147) and tuple(colormap_lut(PINK_GREEN)[255]) == (0, 230, 118)
    assert tuple(colormap_lut(PINK_GREEN)[128]) == (0, 1, 0)  # 0 is black in the middle
    pos, neg = OverlayStyle(cmap=PINK_GREEN), OverlayStyle(cmap=PINK_GREEN, polarity="negative")
    assert tuple(colormap_lut(pos.colormap)[255]) == (0, 230, 118) and tuple(colormap_lut(neg.colormap)[255]) == (255, 20, 147)
    assert OverlayStyle(polarity="signed", diverging_cmap=PINK_GREEN).colormap == PINK_GREEN


@pytest.mark.parametrize("bad", [dict(clip_low=-1.0), dict(clip_low=99.9, clip_percentile=99.0), dict(display="dots"),
                                 dict(outline_mass=0.0)])
def test_invalid_vertex_options(bad):
    with pytest.raises(XaiError):
        OverlayStyle(**bad)


def test_outline_legend_says_what_the_contour_encloses():
    lg = legend(OverlayStyle(display="outlines", clip_low=62.0, clip_percentile=99.9, outline_mass=30.0), [1.0])
    assert lg.ends == "outline: 30 % of the mass" and "62th–99.9th percentiles" in lg.text
    heat = legend(OverlayStyle(clip_low=10.0), [1.0])
    assert "below each map's 10th percentile are not highlighted" in heat.text


def test_boundary_is_the_inner_border():
    r = np.zeros((6, 6), bool)
    r[1:5, 1:5] = True
    b = boundary(r)
    assert b.sum() == 12 and not b[2:4, 2:4].any()
