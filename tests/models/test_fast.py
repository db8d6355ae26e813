"""The fast forward path (``model.fast_forward: auto``): gradient-free passes of a PyTorch
model go through an exact ONNX Runtime export; gradients, hooks and training-mode layers stay
on torch; a run gives the numbers of a torch-only run; what was decided is in the manifest;
an export that is not exact, or fails, falls back to torch and says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from toy import SIZE, colour_net, toy_config
from xai_core.config import config_from_dict
from xai_core.demo.dataset import generate_demo_dataset
from xai_core.demo.runner import demo_config_dict
from xai_core.explainers import EXPLAINERS
from xai_core.models.fast import FastForwardHandle, enable_fast_forward
from xai_core.models.loading import ModelSpec, load_model
from xai_core.runner import run
from xai_core.summary.reader import RunReader

KEY = ["sample_index", "label", "explainer", "metric"]


def toy_handle(factory: str = "toy:colour_net"):
    return load_model(ModelSpec(factory=factory, input_size=(SIZE, SIZE), mean=(0.2, 0.3, 0.4),
                                std=(0.5, 0.5, 0.5)), num_classes=3)


def test_forward_only_calls_use_onnx_runtime_and_the_rest_torch():
    base = toy_handle()
    h, info = enable_fast_forward(base, torch.rand(4, 3, SIZE, SIZE), batch_size=16, require_speedup=False)
    assert isinstance(h, FastForwardHandle) and info["backend"] == "onnxruntime"
    assert 0 <= info["max_abs_diff"] <= 1e-5 and info["probe_batch_sizes"] == [1, 3, 16]
    x = torch.rand(6, 3, SIZE, SIZE)
    with torch.no_grad():
        ref = base.module(x)
        np.testing.assert_allclose(h.predict(x, batch_size=4), base.activate(ref), atol=1e-6)
    assert (h.passes, h.fast_passes) == (6, 6)

    # An input that requires grad: torch, with a graph to differentiate.
    xg = x.clone().requires_grad_(True)
    out = h.probs(xg)
    (g,) = torch.autograd.grad(out[:, 0].sum(), xg)
    assert g.abs().sum() > 0 and (h.passes, h.fast_passes) == (12, 6)

    # A hook on a layer of the network (Grad-CAM, the uncertainty head search): torch, so it fires.
    seen = []
    hook = h.net.features[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    with torch.no_grad():
        h.logits(x)
    hook.remove()
    assert seen == [6] and h.fast_passes == 6

    # A layer in training mode (MC dropout switches dropout layers on): torch.
    h.net.features.train()
    with torch.no_grad():
        h.logits(x)
    h.net.features.eval()
    assert (h.passes, h.fast_passes) == (24, 6)
    with torch.no_grad():
        h.logits(x[:0])  # an empty batch never reaches ONNX Runtime
        h.logits(x)
    assert (h.passes, h.fast_passes) == (30, 12)

    # Weights changed in place after the export: the export is stale, torch answers.
    with torch.no_grad():
        h.net.features[0].bias.add_(0.5)
        np.testing.assert_allclose(h.logits(x), h.module(x), atol=0)
    assert h.fast_passes == 12


def test_export_that_is_not_exact_falls_back_to_torch():
    # Tracing keeps only the branch the example takes; the probe's black image takes the other.
    base = toy_handle("toy:branchy_colour_net")
    h, info = enable_fast_forward(base, torch.full((2, 3, SIZE, SIZE), 0.5), batch_size=8)
    assert h is base and info["backend"] == "torch"
    assert info["max_abs_diff"] == pytest.approx(1.0)
    assert info["reason"].startswith("the export is not exact: max |logit difference| (folded 1, unfolded 1) > 1e-05")
    # An exact export is refused too when the tolerance asks for more than it gives.
    h, info = enable_fast_forward(toy_handle(), torch.rand(2, 3, SIZE, SIZE), batch_size=8, tolerance=-1.0)
    assert not isinstance(h, FastForwardHandle) and "not exact" in info["reason"]


def test_export_failure_falls_back_to_torch_with_one_line(capfd):
    base = toy_handle("toy:cummax_colour_net")
    h, info = enable_fast_forward(base, torch.rand(2, 3, SIZE, SIZE), batch_size=8)
    assert h is base and info["backend"] == "torch" and info["max_abs_diff"] is None
    assert info["reason"].startswith("ONNX export failed: UnsupportedOperatorError:") and "cummax" in info["reason"]
    assert "\n" not in info["reason"]
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err  # the exporter's graph dump is silenced


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_demo")
    generate_demo_dataset(root, n_train=1, n_test=3, seed=0)
    return root


def test_fast_path_run_gives_the_torch_numbers_and_the_manifest_says_so(demo_data, tmp_path):
    # The default demo configuration (every explainer family, MC dropout, counterfactuals) at
    # smoke settings on two images, with the trained demo CNN: on and off the fast path.
    def config(mode):
        cfg = demo_config_dict(demo_data, tmp_path / mode)
        cfg["explainers"] = [{"type": t, "params": dict(EXPLAINERS.get(t).smoke_params)} for t in cfg["explainers"]]
        cfg["metrics"] = [{"type": "deletion_auc", "params": {"steps": 10}},
                          {"type": "insertion_auc", "params": {"steps": 10}}, "pointing_game"]
        cfg["model"]["fast_forward"] = mode
        cfg["dataset"]["limit"] = 2
        cfg["sanity"] = {"enabled": False}
        return config_from_dict(cfg)

    readers = {}
    for mode in ("on", "off"):  # "on": whenever exact, however fast this machine runs it
        cfg = config(mode)
        run(cfg, cfg.out, progress=False)
        readers[mode] = RunReader(cfg.out)
    on, off = readers["on"], readers["off"]
    ff = on.manifest["model"]["fast_forward"]
    assert ff["backend"] == "onnxruntime" and ff["max_abs_diff"] <= 1e-5 and ff["tolerance"] == 1e-5
    assert off.manifest["model"]["fast_forward"] == {"mode": "off", "backend": "torch"}
    t_on, t_off = on.manifest["timing"], off.manifest["timing"]
    assert t_on["model_passes"] == t_off["model_passes"]  # the same passes, counted either way
    assert t_on["fast_forward_passes"] > t_on["model_passes"] / 2 and t_off["fast_forward_passes"] == 0

    a, b = (r.scores().sort_values(KEY).reset_index(drop=True) for r in (on, off))
    assert a[KEY].equals(b[KEY]) and len(a) > 0
    np.testing.assert_allclose(a["raw"], b["raw"], atol=1e-5, equal_nan=True)
    la, lb = on.labels(), off.labels()
    assert la[["label", "tag"]].equals(lb[["label", "tag"]])
    # MC dropout ran on torch (dropout on): a real spread, the same as without the fast path.
    assert (la["prob_std"] > 0).any()
    np.testing.assert_allclose(la["prob_std"], lb["prob_std"], atol=1e-5)
    for row in la.itertuples():
        for e in ("gradient", "integrated_gradients", "occlusion"):
            np.testing.assert_allclose(on.saliency(e, row.part, row.map_offset),
                                       off.saliency(e, row.part, row.map_offset), atol=1e-5, err_msg=e)
    assert len(on.table("counterfactuals")) == len(off.table("counterfactuals")) > 0


def test_run_falls_back_and_records_why(toy_data, tmp_path):
    raw = toy_config(toy_data, tmp_path / "run", explainers=["occlusion", "gradient"],
                     metrics=[{"type": "deletion_auc", "params": {"steps": 8}}],
                     dataset={"kind": "manifest", "path": str(toy_data), "limit": 4})
    raw["model"]["factory"] = "toy:branchy_colour_net"
    cfg = config_from_dict(raw)
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    ff = r.manifest["model"]["fast_forward"]
    assert r.status == "complete" and ff["backend"] == "torch" and "not exact" in ff["reason"]
    assert r.manifest["timing"]["fast_forward_passes"] == 0
    assert r.manifest["config"]["model"]["fast_forward"] == "auto"


def test_torchscript_model_runs_end_to_end_on_the_fast_path(toy_data, tmp_path):
    # A TorchScript network is exported on its own (it cannot be traced inside the wrapper).
    ts = tmp_path / "net.pt"
    torch.jit.script(colour_net()).save(str(ts))
    readers = {}
    for mode in ("on", "off"):
        raw = toy_config(toy_data, tmp_path / "logdir" / mode, explainers=["occlusion", "gradient", {"type": "anchors", "params": dict(EXPLAINERS.get("anchors").smoke_params)}],
                         metrics=[{"type": "deletion_auc", "params": {"steps": 8}}, "pointing_game"],
                         counterfactual={"enabled": True, "layers": 2},
                         dataset={"kind": "manifest", "path": str(toy_data), "limit": 6})
        raw["model"] = {**raw["model"], "factory": None, "torchscript": str(ts), "mean": [0.1, 0.1, 0.1],
                        "fast_forward": mode}
        cfg = config_from_dict(raw)
        run(cfg, cfg.out, progress=False)
        readers[mode] = RunReader(cfg.out)
    on, off = readers["on"], readers["off"]
    assert on.manifest["model"]["fast_forward"]["backend"] == "onnxruntime"
    assert on.manifest["timing"]["fast_forward_passes"] > 0
    a, b = (r.scores().sort_values(KEY).reset_index(drop=True) for r in (on, off))
    assert a[KEY].equals(b[KEY]) and len(a) > 0
    np.testing.assert_allclose(a["raw"], b["raw"], atol=1e-5, equal_nan=True)

    from xai_core.dashboard import RunTables
    from xai_core.dashboard.runs import list_runs

    info = {i.name: i for i in list_runs(tmp_path / "logdir")}["on"]
    assert info.status == "complete" and info.model.endswith("net.pt")
    t = RunTables.load(tmp_path / "logdir" / "on", root=tmp_path / "logdir")
    assert set(t.explainers) == {"occlusion", "gradient", "anchors"}


def test_bad_image_among_the_probe_images_fails_its_part_not_the_start(toy_data, tmp_path):
    # The probe reads the first images; a broken one must fail the run as before (manifest
    # written, status failed, the item named), not before the run exists.
    from xai_core.errors import DatasetError

    (toy_data.parent / "images" / "s001.png").write_bytes(b"not a png")
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=["occlusion"], metrics=[]))
    with pytest.raises(DatasetError, match="s001"):
        run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "failed" and "s001" in r.manifest["error"]


def test_yaml_off_and_on_mean_off_and_auto():
    import yaml

    # YAML 1.1 reads bare `off`/`on` as false/true: the switch must still mean them, not fail.
    for text, want in (("off", "off"), ("on", "on"), ("'off'", "off"), ("auto", "auto")):
        spec = ModelSpec(factory="toy:colour_net", fast_forward=yaml.safe_load(text))
        spec.validate()
        assert spec.fast_forward == want


def test_auto_keeps_an_exact_export_only_when_it_is_faster(monkeypatch):
    from xai_core.models import fast

    base = toy_handle()
    for timings, backend in (((1.0, 0.5), "onnxruntime"), ((1.0, 0.95), "torch"), ((1.0, 1.5), "torch")):
        monkeypatch.setattr(fast, "compare_speed", lambda *a, t=timings: t)
        h, info = enable_fast_forward(base, torch.rand(2, 3, SIZE, SIZE), batch_size=8)
        assert info["backend"] == backend and info["ms_per_image"] == {"torch": timings[0], "onnxruntime": timings[1]}
        assert isinstance(h, FastForwardHandle) == (backend == "onnxruntime")
        if backend == "torch":
            assert info["reason"].startswith("the export is exact but not faster here") and "\n" not in info["reason"]
    # mode "on" keeps it whatever the timings say
    h, info = enable_fast_forward(base, torch.rand(2, 3, SIZE, SIZE), batch_size=8, require_speedup=False)
    assert isinstance(h, FastForwardHandle) and info["backend"] == "onnxruntime"


def test_the_real_timings_are_recorded():
    from xai_core.models.fast import compare_speed

    h, info = enable_fast_forward(toy_handle(), torch.rand(2, 3, SIZE, SIZE), batch_size=8)
    t_torch, t_ort = info["ms_per_image"]["torch"], info["ms_per_image"]["onnxruntime"]
    assert t_torch > 0 and t_ort > 0
    assert (info["backend"] == "onnxruntime") == (t_ort < 0.9 * t_torch)


def test_a_grey_model_keeps_its_one_channel_on_the_fast_path():
    # The fast handle must keep the model's channel count: the run prepares its pixels by it.
    import grey

    base = load_model(ModelSpec(factory="grey:grey_net", input_size=grey.SIZE), num_classes=2)
    assert base.channels == 1
    h, info = enable_fast_forward(base, torch.rand(3, 1, grey.SIZE, grey.SIZE), batch_size=8, require_speedup=False)
    assert isinstance(h, FastForwardHandle) and h.channels == 1, info
    x = torch.rand(5, 1, grey.SIZE, grey.SIZE)
    np.testing.assert_allclose(h.predict(x).numpy(), base.predict(x).numpy(), atol=1e-5)
    assert h.fast_passes == 5


def test_a_network_with_hooks_stays_on_torch_without_an_export():
    # Every pass of a hooked network goes through torch: exporting and probing it is wasted.
    base = load_model(ModelSpec(factory="toy:slow_colour_net", factory_kwargs={"delay": 0.0},
                                input_size=(SIZE, SIZE)), num_classes=3)
    h, info = enable_fast_forward(base, torch.rand(2, 3, SIZE, SIZE), batch_size=8, require_speedup=False)
    assert h is base and info["backend"] == "torch" and "forward hooks" in info["reason"]
    assert info["max_abs_diff"] is None and info["setup_s"] == 0.0


# --- issue 15 item 7 and issue 19 item 3: a bounded probe, decided once --------------------------


def test_auto_skips_the_probe_for_a_run_of_few_gradient_free_passes(toy_data, tmp_path, monkeypatch):
    from xai_core.models import fast

    exported = []
    monkeypatch.setattr(fast, "export", lambda *a, **k: exported.append(1))
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=["gradient", "random"],
                                      metrics=["pointing_game", "sparseness"]))
    run(cfg, cfg.out, progress=False)
    ff = RunReader(cfg.out).manifest["model"]["fast_forward"]
    assert not exported and ff["backend"] == "torch" and ff["setup_s"] == 0.0
    assert ff["estimated_passes"] == 12 and "too few to repay" in ff["reason"]  # one prediction per image


def test_the_estimate_counts_what_the_fast_path_could_serve(toy_data, tmp_path):
    from xai_core.models.fast import estimate_forward_passes

    cfg = config_from_dict(toy_config(toy_data, tmp_path, explainers=[
        "gradient", {"type": "rise", "params": {"masks": 100}}, {"type": "occlusion", "params": {"window": 8, "stride": 8}}],
        metrics=[{"type": "deletion_auc", "params": {"steps": 10}}, "pointing_game"]))
    explainers, metrics = cfg.instantiate()
    n = estimate_forward_passes(explainers, metrics, n_items=5, labels_per_image=2, size=(32, 32))
    # per label: RISE 100 + occlusion (24 // 8 + 2)² = 25 + deletion 10 for each of 3 explainers
    assert n == 5 * (1 + 2 * (100 + 25 + 3 * 10))


def test_the_probe_uses_at_most_16_images_at_every_batch_size():
    base = toy_handle()
    calls = []
    hook = base.module.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    h, info = enable_fast_forward(base, torch.rand(8, 3, SIZE, SIZE), batch_size=64, require_speedup=False)
    hook.remove()
    assert info["probe_images"] == 16 and info["probe_batch_sizes"] == [1, 3, 64]
    assert max(calls) == 64  # the largest batch size is checked (on the probe repeated)
    # the old probe: 64 images, 12 at 1 and 3, 64 at 64, 4 × 64 to time: 344 torch passes per variant
    assert sum(calls) <= 12 + 12 + 64 + 4 * 16


def test_a_model_that_refuses_a_probe_batch_keeps_torch():
    base = load_model(ModelSpec(factory="toy:picky_colour_net", factory_kwargs={"only": 3}, input_size=(SIZE, SIZE)),
                      num_classes=3)
    h, info = enable_fast_forward(base, torch.rand(4, 3, SIZE, SIZE), batch_size=8, require_speedup=False)
    assert h is base and info["backend"] == "torch"
    assert info["reason"] == ("the model raised ValueError: this network takes no batch of 3 images on a probe "
                              "batch of 3 image(s); kept torch (a part that feeds it such a batch fails with this error)")


def test_resume_follows_the_recorded_decision_without_deciding_again(toy_data, tmp_path, monkeypatch):
    from xai_core.models import fast
    from xai_core.summary.integrity import commit_record

    raw = toy_config(toy_data, tmp_path / "run", explainers=["occlusion"], metrics=[], batch_size=4)
    cfg = config_from_dict(raw)
    monkeypatch.setattr(fast, "MIN_PASSES", 0)
    monkeypatch.setattr(fast, "compare_speed", lambda *a: (1.0, 0.5))  # ONNX Runtime "faster" at the start
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    decided = RunReader(cfg.out).manifest["model"]["fast_forward"]
    assert decided["backend"] == "onnxruntime"

    def no_timing(*a):
        raise AssertionError("a resumed run must not decide again")

    monkeypatch.setattr(fast, "compare_speed", no_timing)  # a fresh decision here would time (and pick torch)
    run(cfg, cfg.out, progress=False, resume=True)
    r = RunReader(cfg.out)
    assert r.status == "complete" and r.manifest["model"]["fast_forward"] == decided
    backends = [commit_record(cfg.out, p)["backend"] for p in r.parts()]
    assert [b["forward"] for b in backends] == ["onnxruntime"] * 3
    assert all(0 < b["fast_passes"] <= b["passes"] for b in backends)
