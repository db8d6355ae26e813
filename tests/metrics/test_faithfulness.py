"""Known answers for the perturbation metrics: deletion, insertion, naive faithfulness."""

import numpy as np
import pytest
import torch
from metric_models import context

from xai_core.metrics import METRICS
from xai_core.metrics._curves import normalised_auc, perturbation_curve, pixel_order


def test_normalised_auc_of_simple_curves():
    curves = np.array([[1.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(normalised_auc(curves), [1.0, 0.5, 0.25])


def test_pixel_order_breaks_ties_by_seed_not_raster():
    sal = torch.zeros(1, 4, 4)
    sal[0, 3, 3] = 1.0
    a, b = pixel_order(sal, 0)[0], pixel_order(sal, 1)[0]
    assert a[0] == b[0] == 15  # the one salient pixel first, whatever the seed
    assert not torch.equal(a[1:], torch.arange(15)) and not torch.equal(a, b)


# Square = a quarter of the image, white on black; MeanModel: p₀ = mean pixel = 0.25.
# With steps = 4 the deleted fractions are 0, ¼, ½, ¾, 1, so the curves are exact:
#   object first:  deletion p = .25, 0, 0, 0, 0      → AUC = 0.125 / 4 = 0.03125
#   object last:   deletion p = .25, .25, .25, .25, 0 → AUC = 0.875 / 4 = 0.21875
# and insertion into black is the mirror image.
@pytest.mark.parametrize("name, first, last", [("deletion_auc", 0.03125, 0.21875), ("insertion_auc", 0.21875, 0.03125)])
def test_deletion_insertion_known_answers(mean_model, square_images, name, first, last):
    imgs, _, good = square_images
    params = {"steps": 4} if name == "deletion_auc" else {"steps": 4, "start": "constant"}
    met = METRICS.get(name)(params)
    ctx = context(mean_model, imgs, [0, 0], good)
    np.testing.assert_allclose(met.evaluate(ctx), [first, first], atol=1e-5)
    np.testing.assert_allclose(met.evaluate(context(mean_model, imgs, [0, 0], -good)), [last, last], atol=1e-5)
    # The better map gets the higher [0, 1] score in both cases.
    assert (met.normalise(met.evaluate(ctx)) > met.normalise(met.evaluate(context(mean_model, imgs, [0, 0], -good)))).all()


def test_deletion_counts_passes_and_uses_given_probs(mean_model, square_images):
    imgs, _, good = square_images
    met = METRICS.get("deletion_auc")({"steps": 10})
    mean_model.passes = 0
    plain = met.evaluate(context(mean_model, imgs, [0, 0], good, batch_size=7))
    assert mean_model.passes == 2 * 11
    probs = mean_model.predict(imgs)
    mean_model.passes = 0
    known = met.evaluate(context(mean_model, imgs, [0, 0], good, probs=probs))
    assert mean_model.passes == 2 * 10
    np.testing.assert_allclose(known, plain, atol=1e-6)


def test_insertion_skips_the_full_image_when_probs_given(mean_model, square_images):
    imgs, _, good = square_images
    met = METRICS.get("insertion_auc")({"steps": 10})
    mean_model.passes = 0
    met.evaluate(context(mean_model, imgs, [0, 0], good, probs=mean_model.predict(imgs)))
    assert mean_model.passes == 2 + 2 * 10  # predict + 10 of the 11 points per pair


def test_curve_does_not_depend_on_batching(mean_model):
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(5, 3, 16, 16, generator=g)
    sal = torch.rand(5, 16, 16, generator=g)
    order = pixel_order(sal, 0)
    t = torch.zeros(5, dtype=torch.long)
    a = perturbation_curve(mean_model, imgs, torch.zeros_like(imgs), order, t, 8, batch_size=1)
    b = perturbation_curve(mean_model, imgs, torch.zeros_like(imgs), order, t, 8, batch_size=64)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert np.all(np.diff(a, axis=1) <= 1e-7)  # deleting pixels of a mean-model only lowers p


def test_blur_start_and_replace_options(mean_model, square_images):
    imgs, _, good = square_images
    ctx = context(mean_model, imgs, [0, 0], good)
    blur_ins = METRICS.get("insertion_auc")({"steps": 8}).evaluate(ctx)
    const_ins = METRICS.get("insertion_auc")({"steps": 8, "start": "constant", "fill": 0.0}).evaluate(ctx)
    # A blurred copy keeps the mean (reflect padding aside), so insertion starts near 0.25, not 0.
    assert (blur_ins > const_ins + 0.02).all()
    blur_del = METRICS.get("deletion_auc")({"steps": 8, "replace": "blur"}).evaluate(ctx)
    assert np.isfinite(blur_del).all()


def test_non_finite_map_gives_nan(mean_model, square_images):
    imgs, _, good = square_images
    bad = good.clone()
    bad[1, 0, 0] = float("nan")
    for name in ("deletion_auc", "insertion_auc", "naive_faithfulness", "road_morf"):
        raw = METRICS.get(name)().evaluate(context(mean_model, imgs, [0, 0], bad))
        assert np.isfinite(raw[0]) and np.isnan(raw[1]), name


def test_naive_faithfulness_known_answers(mean_model):
    # MeanModel with fill 0: removing chunk j lowers p by exactly (sum of its pixels) / (3·H·W),
    # so a map equal to the pixel intensity correlates perfectly with the drops (+1).
    # Its negation ranks the darkest half first: importance = −value, drop ∝ +value: −1.
    g = torch.Generator().manual_seed(3)
    gray = torch.rand(2, 1, 16, 16, generator=g)
    imgs = gray.expand(-1, 3, -1, -1).contiguous()
    met = METRICS.get("naive_faithfulness")()
    assert met.chunk_bounds(256)[0].shape[0] == 16  # ⌊√256⌋ chunks of 8 pixels = top 50 %
    mean_model.passes = 0
    good = met.evaluate(context(mean_model, imgs, [0, 0], gray[:, 0]))
    assert mean_model.passes == 2 * 16
    np.testing.assert_allclose(good, [1.0, 1.0], atol=1e-4)
    np.testing.assert_allclose(met.evaluate(context(mean_model, imgs, [0, 0], -gray[:, 0])), [-1.0, -1.0], atol=1e-4)
    np.testing.assert_allclose(met.normalise(np.array([-1.0, 0.0, 1.0])), [0.0, 0.5, 1.0])


def test_naive_faithfulness_flat_map_scores_zero(mean_model, square_images):
    imgs, _, _ = square_images
    raw = METRICS.get("naive_faithfulness")().evaluate(context(mean_model, imgs, [0, 0], torch.ones(2, 16, 16)))
    np.testing.assert_array_equal(raw, [0.0, 0.0])
