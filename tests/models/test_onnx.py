"""ONNX models served by ONNX Runtime (``model: {onnx: file.onnx}``): the trained demo CNN
exported to ONNX runs end to end into a summary the dashboard opens, with the numbers of the
PyTorch run; what needs gradients is refused up front; an ONNX file given as the wrong kind of
model, and a wrong ONNX file, stop with one line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from toy import SIZE, colour_net, toy_config
from xai_core.config import config_from_dict
from xai_core.demo import MEAN, STD
from xai_core.demo.dataset import generate_demo_dataset
from xai_core.demo.model import load_demo_model
from xai_core.demo.runner import demo_config_dict
from xai_core.engine import RunContext
from xai_core.errors import ConfigError, ModelError
from xai_core.explainers import EXPLAINERS
from xai_core.models.loading import ModelSpec, load_model, model_identity
from xai_core.models.onnx import OnnxHandle, file_kind
from xai_core.runner import run
from xai_core.summary.reader import RunReader

PERTURBATION = ["occlusion", "rise", "lime", "kernel_shap", "anchors", "random"]


def export(net: nn.Module, path, *, shape, dynamic: bool = True):
    """``net`` (normalised input → logits) to an ONNX file, as a user would export it."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(*shape),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None)
    return path


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    """(demo data folder, ONNX file of the trained demo CNN)."""
    root = tmp_path_factory.mktemp("onnx_demo")
    generate_demo_dataset(root / "data", n_train=1, n_test=3, seed=0)
    return root / "data", export(load_demo_model(), root / "demo_cnn.onnx", shape=(2, 3, 64, 64))


def params(name: str) -> dict:
    # KernelSHAP's regression is singular with fewer coalitions than superpixels (smoke
    # settings): it then amplifies output differences of 1e-7 into different maps.
    return {"samples": 32, "segments": 12} if name == "kernel_shap" else dict(EXPLAINERS.get(name).smoke_params)


def demo_config(data, out, model: dict, **over) -> dict:
    cfg = demo_config_dict(data, out, explainers=[{"type": t, "params": params(t)} for t in PERTURBATION],
                           metrics=[{"type": "deletion_auc", "params": {"steps": 8}},
                                    {"type": "insertion_auc", "params": {"steps": 8}}, "pointing_game", "sparseness"])
    cfg["model"].update(model)
    cfg.update(uncertainty={"enabled": False}, sanity={"enabled": False}, **over)
    return cfg


def test_demo_cnn_as_onnx_runs_end_to_end_with_the_pytorch_numbers(demo_onnx, tmp_path):
    data, onnx_file = demo_onnx
    onnx_cfg = config_from_dict(demo_config(data, tmp_path / "logdir" / "onnx",
                                            {"factory": None, "onnx": str(onnx_file)}))
    torch_cfg = config_from_dict(demo_config(data, tmp_path / "logdir" / "torch", {"fast_forward": "off"}))
    run(onnx_cfg, onnx_cfg.out, progress=False)
    run(torch_cfg, torch_cfg.out, progress=False)

    r, ref = RunReader(onnx_cfg.out), RunReader(torch_cfg.out)
    assert r.status == "complete"
    m = r.manifest["model"]
    assert m["onnx"] == str(onnx_file) and len(m["onnx_sha256"]) == 16
    assert m["fast_forward"]["backend"] == "onnx"
    assert r.manifest["timing"]["model_passes"] > 0
    # The same network in two runtimes: the same probabilities, labels, scores and maps.
    np.testing.assert_allclose(np.stack(r.samples()["probs"]), np.stack(ref.samples()["probs"]), atol=1e-5)
    assert r.labels()[["label", "tag"]].equals(ref.labels()[["label", "tag"]])
    key = ["sample_index", "label", "explainer", "metric"]
    a, b = (x.scores().sort_values(key).reset_index(drop=True) for x in (r, ref))
    assert len(a) > 0 and a[key].equals(b[key])
    assert set(a["explainer"]) == set(PERTURBATION)
    np.testing.assert_allclose(a["raw"], b["raw"], atol=1e-5, equal_nan=True)
    for row in r.labels().head(3).itertuples():
        for name in PERTURBATION:
            np.testing.assert_allclose(r.saliency(name, row.part, row.map_offset),
                                       ref.saliency(name, row.part, row.map_offset), atol=1e-4, err_msg=name)
    cf = r.table("counterfactuals")
    assert len(cf) > 0 and len(cf) == len(ref.table("counterfactuals"))

    # ... and the dashboard opens it.
    from xai_core.dashboard import RunTables
    from xai_core.dashboard.assessment import explainer_metric_table
    from xai_core.dashboard.counterfactual import result_rows
    from xai_core.dashboard.runs import list_runs

    info = {i.name: i for i in list_runs(tmp_path / "logdir")}["onnx"]
    assert info.status == "complete" and info.model.endswith("demo_cnn.onnx")
    t = RunTables.load(onnx_cfg.out, root=tmp_path / "logdir")
    assert set(t.explainers) == set(PERTURBATION) and t.n_samples == 3
    assert len(explainer_metric_table(t, n_boot=20)) > 0
    assert len(result_rows(t)) > 0


def test_gradient_explainers_mc_dropout_and_sanity_are_refused_up_front(demo_onnx, tmp_path):
    data, onnx_file = demo_onnx
    model = {"factory": None, "onnx": str(onnx_file)}
    cfg = config_from_dict(demo_config(data, tmp_path / "a", model, explainers=["occlusion", "gradient", "gradcam"]))
    with pytest.raises(ConfigError) as e:
        run(cfg, cfg.out, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "['gradient', 'gradcam'] need gradients" in msg and "onnx" in msg
    assert not (tmp_path / "a").exists()  # nothing started
    for over, hint in (({"uncertainty": {"enabled": True}}, "uncertainty.dropout: 0 with tta_shift"),
                       ({"sanity": {"enabled": True}}, "sanity.enabled: false")):
        cfg = config_from_dict({**demo_config(data, tmp_path / "b", model), **over})
        with pytest.raises(ConfigError, match="onnx") as e:
            RunContext.build(cfg)
        assert hint in str(e.value)


def test_the_dask_driver_refuses_gradient_explainers_before_the_manifest(demo_onnx, tmp_path):
    # The driver loads no model; it judges by the configuration (onnx / url), as run() does.
    from xai_core.distributed import run_distributed

    data, onnx_file = demo_onnx
    cfg = config_from_dict(demo_config(data, tmp_path / "d", {"factory": None, "onnx": str(onnx_file)},
                                       explainers=["occlusion", "gradient"]))
    with pytest.raises(ConfigError, match=r"\['gradient'\] need gradients.*onnx"):
        run_distributed(cfg, cfg.out, workers=1, progress=False)
    assert not (tmp_path / "d").exists()


def test_uncertainty_by_test_time_augmentation_works_on_onnx(toy_data, tmp_path):
    # The same network as ONNX and as PyTorch: the same augmented passes, the same spread.
    export(colour_net(), tmp_path / "net.onnx", shape=(1, 3, SIZE, SIZE))
    labels = {}
    for kind, model in (("onnx", {"factory": None, "onnx": str(tmp_path / "net.onnx")}), ("torch", {})):
        raw = toy_config(toy_data, tmp_path / kind, explainers=["random"], metrics=[],
                         uncertainty={"enabled": True, "passes": 4, "dropout": 0, "tta_shift": 2, "tta_noise": 0.05})
        raw["model"].update(model)
        cfg = config_from_dict(raw)
        run(cfg, cfg.out, progress=False)
        labels[kind] = RunReader(cfg.out).labels()
    assert (labels["onnx"]["prob_std"] > 1e-4).any()
    for col in ("prob_mean", "prob_std", "ci_low", "ci_high"):
        np.testing.assert_allclose(labels["onnx"][col], labels["torch"][col], atol=1e-5, err_msg=col)
    with pytest.raises(ConfigError, match="no test-time augmentation"):
        config_from_dict(toy_config(toy_data, tmp_path / "x", uncertainty={"enabled": True, "dropout": 0}))


def test_onnx_file_given_as_torchscript_or_weights_is_detected(demo_onnx, tmp_path):
    _, onnx_file = demo_onnx
    spec = ModelSpec(torchscript=str(onnx_file), input_size=(64, 64))
    with pytest.raises(ModelError, match="is an ONNX file; use model.onnx"):
        load_model(spec, num_classes=10)
    spec = ModelSpec(factory="xai_core.demo.model:DemoCNN", weights=str(onnx_file), input_size=(64, 64))
    with pytest.raises(ModelError, match="is an ONNX file; use model.onnx"):
        load_model(spec, num_classes=10)
    # A real TorchScript file is not mistaken for one.
    ts = tmp_path / "net.pt"
    torch.jit.trace(colour_net(), torch.rand(1, 3, SIZE, SIZE)).save(str(ts))
    assert file_kind(ts) == "zip" and file_kind(onnx_file) == "onnx"
    assert load_model(ModelSpec(torchscript=str(ts), input_size=(SIZE, SIZE)), 3).kind == "pytorch"


def test_non_onnx_file_wrong_shapes_and_bad_specs_stop_with_one_line(tmp_path):
    net = colour_net()
    ts = tmp_path / "net.pt"
    torch.jit.trace(net, torch.rand(1, 3, SIZE, SIZE)).save(str(ts))
    text = tmp_path / "notes.onnx"
    text.write_text("not a model\n")
    fixed = export(net, tmp_path / "fixed.onnx", shape=(1, 3, SIZE, SIZE), dynamic=False)
    cases = [
        (ModelSpec(onnx=str(ts), input_size=(SIZE, SIZE)), 3, "is not an ONNX file; it is a zip archive"),
        (ModelSpec(onnx=str(text), input_size=(SIZE, SIZE)), 3, "is not an ONNX file"),
        (ModelSpec(onnx=str(tmp_path / "missing.onnx"), input_size=(SIZE, SIZE)), 3, "does not exist"),
        (ModelSpec(onnx=str(fixed), input_size=(48, 48)), 3, r"has shape \[1, 3, 32, 32\]; expected \(N, 3, 48, 48\)"),
        (ModelSpec(onnx=str(fixed), input_size=(SIZE, SIZE), mean=(0,), std=(1,), channels=1), 3, "expected \\(N, 1, 32, 32\\)"),
        (ModelSpec(onnx=str(fixed), input_size=(SIZE, SIZE)), 5, r"outputs shape \(2, 3\).*expected \(2, 5\)"),
    ]
    for spec, k, pattern in cases:
        with pytest.raises(ModelError, match=pattern) as e:
            load_model(spec, num_classes=k)
        assert "\n" not in str(e.value)
    with pytest.raises(ModelError, match="exactly one of"):
        ModelSpec(factory="toy:colour_net", onnx=str(fixed)).validate()
    with pytest.raises(ModelError, match="fast_forward"):
        ModelSpec(factory="toy:colour_net", fast_forward="always").validate()


def test_fixed_batch_onnx_file_serves_any_batch_with_torch_numbers(tmp_path):
    net = colour_net()
    fixed = export(net, tmp_path / "fixed.onnx", shape=(1, 3, SIZE, SIZE), dynamic=False)
    spec = ModelSpec(onnx=str(fixed), input_size=(SIZE, SIZE), mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    h = load_model(spec, num_classes=3)
    assert isinstance(h, OnnxHandle) and h.fixed_batch == 1 and not h.supports_gradients
    x = torch.rand(5, 3, SIZE, SIZE)
    ref = load_model(ModelSpec(factory="toy:colour_net", input_size=(SIZE, SIZE), mean=spec.mean, std=spec.std), 3)
    with torch.no_grad():
        np.testing.assert_allclose(h.predict(x, batch_size=2), ref.predict(x, batch_size=2), atol=1e-6)
    assert h.passes == 5
    ident = model_identity(spec)
    assert ident["onnx"] == str(fixed) and ident["onnx_sha256"]


def test_onnx_path_in_a_config_file_is_relative_to_it(tmp_path, toy_data):
    export(colour_net(), tmp_path / "net.onnx", shape=(1, 3, SIZE, SIZE))
    raw = toy_config(toy_data, tmp_path / "out")
    raw["model"] = {**raw["model"], "factory": None, "onnx": "net.onnx"}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert cfg.model.onnx == str((tmp_path / "net.onnx").resolve())


def test_every_metric_and_gradient_free_explainer_runs_on_an_onnx_model(toy_data, tmp_path):
    from xai_core.metrics import METRICS

    export(colour_net(), tmp_path / "net.onnx", shape=(1, 3, SIZE, SIZE))
    fast = {"deletion_auc": {"steps": 4}, "insertion_auc": {"steps": 4}, "naive_faithfulness": {"chunks": 4},
            "road_morf": {"fractions": [0.5]}, "road_lerf": {"fractions": [0.5]},
            "max_sensitivity": {"samples": 2}, "avg_sensitivity": {"samples": 2}, "infidelity": {"samples": 2}}
    explainers = [{"type": c.name, "params": dict(c.smoke_params)} for c in EXPLAINERS
                  if not (c.needs_gradients or c.needs_python_forward)]
    raw = toy_config(toy_data, tmp_path / "run", explainers=explainers,
                     metrics=[{"type": c.name, "params": fast.get(c.name, {})} for c in METRICS],
                     counterfactual={"enabled": True, "layers": 2}, dataset={"kind": "manifest", "path": str(toy_data),
                                                                               "limit": 4})
    raw["model"] = {**raw["model"], "factory": None, "onnx": str(tmp_path / "net.onnx")}
    cfg = config_from_dict(raw)
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "complete"
    assert {e["type"] for e in r.explainers} >= set(PERTURBATION)
    scores = r.scores()
    assert set(scores["metric"]) == set(METRICS.names())
    finite = scores.groupby("metric")["raw"].apply(lambda v: np.isfinite(v).any())
    # ColourNet's features cancel infidelity's channel-shared noise: Δf is rounding, so NaN
    # (tests/test_rounding.py); every other metric scores something.
    assert not finite.pop("infidelity") and finite.all(), finite[~finite]
