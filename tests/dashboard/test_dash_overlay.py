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

    from xai_core.dashboard.overlay import legend

    lg = legend(OverlayStyle(), [0.5, 0.5])
    assert (lg.low, lg.high, lg.ends) == (0.0, 0.5, "0 … 0.5")
    bar = np.asarray(Image.open(io.BytesIO(lg.bar)))
    assert bar.shape[1] > bar.shape[0] and (bar[0, 0] != bar[0, -1]).any()     # a horizontal colour ramp
    signed = legend(OverlayStyle(polarity="signed"), [2.0], signed_maps=False)
    assert (signed.low, signed.high) == (-2.0, 2.0) and "middle colour is 0" in signed.text
    assert "never negative" in signed.text
    per_map = legend(OverlayStyle(scale="map"), [0.1, 0.3])
    assert per_map.high is None and per_map.ends == "0 … each map's max" and "own scale" in per_map.text
