"""ROAD: the imputation solves its linear system, and the two orders rank maps correctly."""

import numpy as np
import torch
from metric_models import context

from xai_core.metrics import METRICS
from xai_core.metrics._road import linear_impute, noisy_linear_impute


def test_linear_impute_reproduces_a_plane_inside_the_image():
    # Every interior pixel with its full symmetric 8-neighbourhood satisfies the weighted-mean
    # equation for a linear function, so removed interior pixels come back exactly.
    rows, cols = np.mgrid[0:12, 0:10]
    img = np.stack([0.1 + 0.03 * rows + 0.02 * cols, 0.5 - 0.01 * rows, 0.2 + 0.04 * cols])
    removed = np.zeros((12, 10), dtype=bool)
    removed[2:9, 3:8] = True
    removed[5, 1] = True
    vals = linear_impute(img, removed)
    np.testing.assert_allclose(vals, img.reshape(3, -1)[:, removed.reshape(-1)], atol=1e-12)


def test_imputed_pixel_is_the_weighted_mean_of_its_neighbours():
    img = np.zeros((1, 3, 3))
    img[0] = [[1, 2, 3], [4, 0, 6], [7, 8, 9]]
    removed = np.zeros((3, 3), dtype=bool)
    removed[1, 1] = True
    expected = (2 + 4 + 6 + 8) / 6 + (1 + 3 + 7 + 9) / 12
    np.testing.assert_allclose(linear_impute(img, removed), [[expected]])


def test_noise_is_added_only_to_removed_pixels():
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(2, 3, 8, 8, generator=g)
    removed = torch.zeros(2, 8, 8, dtype=bool)
    removed[0, 2:5, 2:5] = True
    clean = noisy_linear_impute(imgs, removed, 0.0, torch.Generator().manual_seed(1))
    noisy = noisy_linear_impute(imgs, removed, 0.01, torch.Generator().manual_seed(1))
    keep = ~removed.unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.equal(noisy[keep], imgs[keep]) and torch.equal(clean[1], imgs[1])
    d = (noisy - clean)[~keep]
    assert 0.003 < float(d.std()) < 0.02


def test_morf_and_lerf_rank_the_object_map_correctly(mean_model, square_images):
    imgs, _, good = square_images
    # MeanModel: removing the white square (imputed from black surroundings) lowers p.
    morf, lerf = METRICS.get("road_morf")(), METRICS.get("road_lerf")()
    mean_model.passes = 0
    g_morf = morf.evaluate(context(mean_model, imgs, [0, 0], good))
    assert mean_model.passes == 2 * 9
    b_morf = morf.evaluate(context(mean_model, imgs, [0, 0], -good))
    g_lerf = lerf.evaluate(context(mean_model, imgs, [0, 0], good))
    b_lerf = lerf.evaluate(context(mean_model, imgs, [0, 0], -good))
    assert (g_morf < b_morf - 0.05).all() and (g_lerf > b_lerf + 0.05).all()
    assert (morf.normalise(g_morf) > morf.normalise(b_morf)).all()
    assert (lerf.normalise(g_lerf) > lerf.normalise(b_lerf)).all()


def test_road_is_reproducible_and_configurable(mean_model, square_images):
    imgs, _, good = square_images
    met = METRICS.get("road_morf")({"fractions": [0.25, 0.5], "noise": 0.0})
    a = met.evaluate(context(mean_model, imgs, [0, 0], good, seed=3))
    b = met.evaluate(context(mean_model, imgs, [0, 0], good, seed=3, batch_size=1))
    np.testing.assert_allclose(a, b, atol=1e-6)
