"""Known answers for the localisation metrics on hand-drawn maps and masks."""

import numpy as np
import pytest
import torch
from metric_models import context

from xai_core.metrics import METRICS
from xai_core.metrics.pointing_game import tolerance_px


def loc_ctx(sal, masks, *, gt=None, has=None):
    sal = torch.as_tensor(np.asarray(sal, dtype=np.float32))
    p = sal.shape[0]
    return context(None, torch.zeros(p, 3, *sal.shape[1:]), [0] * p, sal, masks=np.asarray(masks, bool),
                   has_mask=np.ones(p, bool) if has is None else np.asarray(has),
                   is_ground_truth=np.ones(p, bool) if gt is None else np.asarray(gt))


def box_mask(h, w, box):
    """[x_min, y_min, x_max, y_max] with x the column, max exclusive (the dataset convention)."""
    m = np.zeros((h, w), bool)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("name", ["pointing_game", "iosr", "relevance_mass_accuracy", "relevance_rank_accuracy"])
def test_perfect_box_map_scores_one_and_nan_where_not_applicable(name):
    m = box_mask(20, 30, [5, 2, 25, 8])  # wide box
    sal = np.stack([m, m, m]).astype(np.float32)
    raw = METRICS.get(name)().evaluate(loc_ctx(sal, [m, m, m], gt=[True, False, True], has=[True, True, False]))
    assert raw[0] == pytest.approx(1.0)
    assert np.isnan(raw[1]) and np.isnan(raw[2])  # not a ground-truth label / no box


def test_pointing_game_hit_miss_tolerance_and_axes():
    h, w = 64, 64
    assert tolerance_px(0, (h, w)) == 4 and tolerance_px(0, (224, 224)) == 15 and tolerance_px(7, (h, w)) == 7
    m = box_mask(h, w, [40, 5, 60, 15])  # x = columns 40..59, y = rows 5..14
    maps = np.zeros((4, h, w), np.float32)
    maps[0, 10, 50] = 1  # (row 10, col 50): inside
    maps[1, 50, 10] = 1  # the transposed point (what swapping the box axes would accept): outside
    maps[2, 10, 37] = 1  # 3 px left of the box: inside the 4 px tolerance
    maps[3, 10, 30] = 1  # 10 px away: miss
    raw = METRICS.get("pointing_game")().evaluate(loc_ctx(maps, [m] * 4))
    np.testing.assert_array_equal(raw, [1, 0, 1, 0])
    strict = METRICS.get("pointing_game")({"tolerance": 1}).evaluate(loc_ctx(maps, [m] * 4))
    np.testing.assert_array_equal(strict, [1, 0, 0, 0])


def test_pointing_game_is_the_expected_hit_over_tied_maxima():
    """Two tied maxima, one on the object and one off: a pointer at a random maximum hits
    half the time. Counting a hit when ANY tie is near the object (Quantus) gives 1, and the
    first maximum in raster order gives 1 or 0 depending on where the object is."""
    h, w = 32, 32
    left, right = box_mask(h, w, [2, 10, 8, 16]), box_mask(h, w, [24, 10, 30, 16])
    sal = np.zeros((4, h, w), np.float32)
    sal[:, 12, 4] = sal[:, 12, 27] = 1.0  # one maximum on each object
    sal[2, 12, 27] = 1.0 - 2e-7            # float-noise tie (2 ulp) still counts as a tie
    sal[3, 12, 27] = 0.99                  # a clear runner-up does not
    pg = METRICS.get("pointing_game")({"tolerance": 1})
    raw = pg.evaluate(loc_ctx(sal, [left, right, left, left]))
    np.testing.assert_allclose(raw, [0.5, 0.5, 0.5, 1.0])
    # Three maxima, one near the object: 1/3.
    sal = np.zeros((1, h, w), np.float32)
    sal[0, 12, 4] = sal[0, 30, 30] = sal[0, 0, 20] = 2.0
    assert pg.evaluate(loc_ctx(sal, [left]))[0] == pytest.approx(1 / 3)


def test_pointing_game_of_a_flat_map_is_the_chance_level():
    """A flat map is all ties: the expected hit is the share of pixels whose tolerance disc
    touches the object, not 0 and not 1."""
    h, w = 20, 20
    m = box_mask(h, w, [0, 0, 5, 20])  # 5 columns; tolerance 1 px adds a sixth
    for value in (0.0, 1.0, -3.0):
        raw = METRICS.get("pointing_game")({"tolerance": 1}).evaluate(loc_ctx(np.full((1, h, w), value), [m]))
        assert raw[0] == pytest.approx(6 / 20)


def test_iosr_counts_the_salient_region():
    m = box_mask(10, 10, [0, 0, 5, 10])  # left half
    sal = np.zeros((3, 10, 10), np.float32)
    sal[0, :, 3:7] = 1.0  # salient columns 3..6: half inside
    sal[1, :, :] = 0.4
    sal[1, 0, 0] = 1.0  # only one pixel above 0.5·max, and it is inside
    sal[2] = -1.0  # no positive value: no salient region
    raw = METRICS.get("iosr")().evaluate(loc_ctx(sal, [m] * 3))
    np.testing.assert_allclose(raw[:2], [0.5, 1.0])
    assert np.isnan(raw[2])


def test_relevance_mass_accuracy_uses_positive_relevance_only():
    m = box_mask(4, 4, [0, 0, 2, 2])
    sal = np.zeros((2, 4, 4), np.float32)
    sal[0, 0, 0], sal[0, 1, 1] = 2.0, 1.0  # 3 inside
    sal[0, 3, 3] = 1.0  # 1 outside
    sal[0, 3, 0] = -5.0  # negative: ignored
    sal[1] = -1.0
    raw = METRICS.get("relevance_mass_accuracy")().evaluate(loc_ctx(sal, [m, m]))
    assert raw[0] == pytest.approx(0.75) and np.isnan(raw[1])


def test_relevance_rank_accuracy_top_k():
    m = box_mask(4, 4, [0, 0, 2, 2])  # K = 4
    sal = np.zeros((1, 4, 4), np.float32)
    sal[0, 0, 0], sal[0, 0, 1], sal[0, 1, 0] = 9, 8, 7  # three inside
    sal[0, 3, 3] = 6  # the fourth best is outside
    sal[0, 1, 1] = 1  # inside but ranked below
    raw = METRICS.get("relevance_rank_accuracy")().evaluate(loc_ctx(sal, [m]))
    assert raw[0] == pytest.approx(0.75)


def test_relevance_rank_accuracy_of_a_flat_map_is_chance_on_average():
    m = box_mask(16, 16, [0, 0, 8, 8])  # a quarter
    sal = np.zeros((200, 16, 16), np.float32)
    sal += np.random.default_rng(0).normal(size=(200, 1, 1)).astype(np.float32)  # flat per map
    raw = METRICS.get("relevance_rank_accuracy")().evaluate(loc_ctx(sal, [m] * 200))
    assert abs(raw.mean() - 0.25) < 0.03
