"""Memory-aware batches (issue 15, item 2), on the CPU with a model that runs out of memory as
a GPU does (tests/toy.py ``OomColourNet`` raises ``torch.cuda.OutOfMemoryError`` above a batch
size, in its forward or in its backward pass): the call is retried in pieces that fit, the maps
and scores equal an unconstrained run's, a run never dies while one image fits, and the sizes
used reach the manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toy import SIZE, OomColourNet, colour_net, toy_config
from xai_core.errors import ModelError
from xai_core.explainers import EXPLAINERS
from xai_core.metrics import METRICS
from xai_core.metrics.base import MetricContext
from xai_core.models.batching import PassBatches, backoff_rows, is_oom, probe_batch
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel


def handle(net) -> ClassifierHandle:
    return ClassifierHandle(PixelSpaceModel(net, [0.0] * 3, [1.5] * 3), "sigmoid", (SIZE, SIZE), 3)


@pytest.fixture
def pixels():
    x = torch.full((3, 3, SIZE, SIZE), 0.4)
    x[0, :, 4:12, 4:12] = torch.tensor([1.0, 0, 0]).view(3, 1, 1)
    x[1, :, 16:24, 10:18] = torch.tensor([0, 1.0, 0]).view(3, 1, 1)
    x[2, :, 2:10, 20:28] = torch.tensor([0, 0, 1.0]).view(3, 1, 1)
    return x


@pytest.mark.parametrize("name", ["occlusion", "rise", "lime", "kernel_shap", "anchors"])
def test_forward_only_passes_are_cut_where_the_device_runs_out(name, pixels):
    cls = EXPLAINERS.get(name)
    params = {**cls.smoke_params, **({"window": 8, "stride": 4} if name == "occlusion" else {})}
    free, tight = handle(colour_net()), handle(OomColourNet(forward_limit=5))
    labels = [[0, 1], [1], [2]]
    want = cls(params).explain_grouped(free, pixels, labels, batch_size=16)
    got = cls(params).explain_grouped(tight, pixels, labels, batch_size=16)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-6)
    assert tight.batches.forward_backoffs >= 1 and tight.batches.limit <= 5
    assert max(tight.net.sizes) <= 5, "no pass above the size that fits ran"


def test_curve_metrics_back_off_and_score_the_same(pixels):
    free, tight = handle(colour_net()), handle(OomColourNet(forward_limit=7))
    maps = EXPLAINERS.get("gradient")().explain(free, pixels, [0, 1, 2])
    for name in ("deletion_auc", "insertion_auc", "naive_faithfulness", "road_morf", "infidelity"):
        metric = METRICS.get(name)({"steps": 8} if "auc" in name else {})
        scores = [metric.evaluate(MetricContext(m, pixels, torch.tensor([0, 1, 2]), maps, batch_size=32))
                  for m in (free, tight)]
        np.testing.assert_allclose(scores[1], scores[0], rtol=0, atol=1e-6, err_msg=name)
    assert tight.batches.forward_backoffs >= 1 and tight.batches.limit <= 7


@pytest.mark.parametrize("name", ["gradient", "integrated_gradients", "smoothgrad", "gradient_shap",
                                  "guided_backprop", "gradcam", "deeplift", "xrai"])
def test_gradient_chunks_are_halved_where_the_backward_pass_runs_out(name, pixels):
    cls = EXPLAINERS.get(name)
    params = {**cls.smoke_params, **({"steps": 6} if name in ("integrated_gradients", "xrai") else {})}
    free, tight = handle(colour_net()), handle(OomColourNet(backward_limit=2))
    x, t = torch.cat([pixels, pixels[:1]]), [0, 1, 2, 1]
    want = cls(params).explain(free, x, t, batch_size=8)
    exp = cls(params)
    got = exp.explain(tight, x, t, batch_size=8)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    record = tight.batches.record()["gradient_backoffs"][name]
    assert record["backoffs"] >= 1 and record["pairs"] <= 2
    # The size that fitted is kept: a second call backs off no more.
    before = record["backoffs"]
    torch.testing.assert_close(exp.explain(tight, x, t, batch_size=8), want, rtol=0, atol=1e-6)
    assert tight.batches.record()["gradient_backoffs"][name]["backoffs"] == before


def test_a_single_image_that_does_not_fit_stops_with_one_line(pixels):
    with pytest.raises(ModelError, match="single image") as e:
        handle(OomColourNet(forward_limit=0)).predict(pixels)
    assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="single image"):
        EXPLAINERS.get("gradient")().explain(handle(OomColourNet(backward_limit=0)), pixels, [0, 1, 2])


def test_other_errors_are_not_retried():
    calls = []

    def boom(x):
        calls.append(x.shape[0])
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        PassBatches().forward(boom, torch.zeros(8, 3), torch.device("cpu"))
    assert calls == [8]
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory")) and is_oom(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED"))
    assert not is_oom(RuntimeError("CUDA error: an illegal memory access was encountered"))


def test_backoff_halves_pairs_then_rows():
    assert backoff_rows(8, 64) == (4, 32)
    assert backoff_rows(1, 64) == (1, 32)
    assert backoff_rows(1, 1) is None


def test_probe_picks_the_largest_batch_that_fits_and_still_pays():
    def fits_below(limit):
        def fn(x):
            if x.shape[0] > limit:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return fn

    images = torch.zeros(3, 1, 2, 2)
    per_image = {64: 1.0, 128: 0.6, 256: 0.4, 512: 0.38, 1024: 0.2}
    clock = lambda fn, x: (fn(x), per_image[x.shape[0]] * x.shape[0])[1]  # noqa: E731
    best, rec = probe_batch(fits_below(10_000), images, torch.device("cpu"), clock=clock)
    assert best == 256 and "not faster" in rec["stopped"]  # 512 gains 5 %, less than 10 %
    best, rec = probe_batch(fits_below(200), images, torch.device("cpu"), clock=clock)
    assert best == 128 and "out of memory at 256" == rec["stopped"]
    slow = {32: 1.0, 16: 1.0, 64: 1.0}
    best, rec = probe_batch(fits_below(40), images, torch.device("cpu"), clock=lambda f, x: (f(x), slow[x.shape[0]])[1])
    assert best == 32 and [s["batch"] for s in rec["sizes"]] == [64, 32]
    with pytest.raises(ModelError, match="single image"):
        probe_batch(fits_below(0), images, torch.device("cpu"), start=2, clock=clock)


def test_a_run_on_a_model_that_runs_out_of_memory_equals_the_unconstrained_run(toy_data, tmp_path):
    from xai_core.config import config_from_dict
    from xai_core.runner import run
    from xai_core.summary import RunReader

    def config(out, **model):
        raw = toy_config(toy_data, tmp_path / out, explainers=["gradient", {"type": "integrated_gradients",
                                                                            "params": {"steps": 8}}, "occlusion"],
                         metrics=["deletion_auc", "insertion_auc"], explain_batch_size=32)
        raw["model"].update(fast_forward="off", **model)
        return config_from_dict(raw)

    free = run(config("free"), tmp_path / "free", progress=False)
    tight = run(config("tight", factory="toy:oom_colour_net",
                       factory_kwargs={"forward_limit": 9, "backward_limit": 3}), tmp_path / "tight", progress=False)
    a, b = RunReader(free), RunReader(tight)
    assert b.status == "complete"
    sa, sb = (r.scores().sort_values(["sample_index", "label", "explainer", "metric"]) for r in (a, b))
    np.testing.assert_allclose(sb["raw"].to_numpy(), sa["raw"].to_numpy(), rtol=0, atol=1e-6)
    batches = json.loads((tight / "manifest.json").read_text())["model"]["batches"]
    assert batches["explain_batch_size"] == 32 and batches["resolved"] == 32
    assert batches["forward_backoffs"] >= 1 and batches["forward_limit"] <= 9
    assert set(batches["gradient_backoffs"]) == {"gradient", "integrated_gradients"}
    free_batches = json.loads((free / "manifest.json").read_text())["model"]["batches"]
    assert free_batches["forward_backoffs"] == 0 and free_batches["largest_forward"] == 32
