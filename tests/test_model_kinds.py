"""Each kind of PyTorch model end to end through the runner into a summary the dashboard opens:
a Python factory (RGB, sigmoid), a 1-channel (grey) softmax model, and its TorchScript export.
(ONNX and served models have their own tests.)"""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from grey import SIZE, GreyNet, grey_config, make_grey_dataset
from opens import assert_dashboard_opens
from toy import toy_config
from xai_core.config import config_from_dict, load_config
from xai_core.errors import ModelError, XaiError
from xai_core.runner import run
from xai_core.summary import RunReader


@pytest.fixture(scope="module")
def grey_data(tmp_path_factory):
    return make_grey_dataset(tmp_path_factory.mktemp("grey"))


@pytest.fixture(scope="module")
def grey_run(grey_data, tmp_path_factory):
    manifest, weights = grey_data
    out = tmp_path_factory.mktemp("runs") / "grey"
    run(config_from_dict(grey_config(manifest, weights, out)), out, progress=False)
    return out


def test_python_factory_rgb(toy_data, tmp_path):
    out = tmp_path / "runs" / "rgb"
    cfg = toy_config(toy_data, out, explainers=["gradient", "deeplift", "random"], metrics=["pointing_game"])
    run(config_from_dict(cfg), out, progress=False)
    assert_dashboard_opens(out, n_samples=12)


def test_grey_model_is_detected_and_explained(grey_run):
    # channels unset, mean/std of one value, input_size an int: the loader reads 1 input channel
    # off the first convolution, the dataset delivers grey pixels, every explainer and metric runs.
    r = RunReader(grey_run)
    assert r.manifest["status"] == "complete" and r.manifest["config"]["model"]["input_size"] == [SIZE, SIZE]
    assert r.manifest["config"]["model"]["channels"] is None and r.manifest["model"]["channels"] == 1  # detected
    labels = r.table("labels")
    # Softmax: ground truth ∪ argmax; the trained net gets the 6 held-out digits right.
    assert len(labels) == 6 and set(labels["tag"]) == {"TP"}
    row = labels.iloc[0]
    img = r.image(int(row.part), 0)
    assert img.shape == (SIZE, SIZE, 3) and (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    for e in r.explainers:
        m = r.saliency(e["name"], int(row.part), int(row.map_offset))
        assert m.shape == (SIZE, SIZE) and np.isfinite(m).all()
    scores = r.table("scores")
    assert set(scores["explainer"]) == {e["name"] for e in r.explainers} and scores["raw"].notna().all()
    details = r.table("details")
    dl = details[(details.explainer == "deeplift") & (details.key == "completeness_error")]
    assert len(dl) == 6 and dl["value"].max() < 1e-3  # DeepLIFT sums to F(x) − F(0) on the grey net
    assert_dashboard_opens(grey_run, n_samples=6)


def grey_torchscript(weights, tmp_path) -> Path:
    """The trained grey net traced to TorchScript and saved (the file a user would give)."""
    net = GreyNet()
    net.load_state_dict(torch.load(weights, weights_only=True))
    ts = tmp_path / "grey.pt"
    torch.jit.trace(net.eval(), torch.zeros(1, 1, SIZE, SIZE)).save(str(ts))
    return ts


def test_grey_torchscript_export_gives_the_same_gradient_maps(grey_data, grey_run, tmp_path):
    manifest, weights = grey_data
    ts = grey_torchscript(weights, tmp_path)
    out = tmp_path / "runs" / "ts"
    cfg = grey_config(manifest, weights, out, explainers=["gradient", {"type": "integrated_gradients", "params": {"steps": 8}},
                                                          {"type": "occlusion", "params": {"window": 4, "stride": 4}}])
    cfg["model"] = {**cfg["model"], "torchscript": str(ts), "factory": None, "weights": None}
    run(config_from_dict(cfg), out, progress=False)
    a, b = RunReader(grey_run), RunReader(out)
    la, lb = a.table("labels"), b.table("labels")
    assert la[["sample_index", "label", "tag"]].equals(lb[["sample_index", "label", "tag"]])
    for name in ("gradient", "integrated_gradients", "occlusion"):
        for (_, ra), (_, rb) in zip(la.iterrows(), lb.iterrows()):
            np.testing.assert_allclose(b.saliency(name, int(rb.part), int(rb.map_offset)),
                                       a.saliency(name, int(ra.part), int(ra.map_offset)), rtol=1e-4, atol=1e-6)
    assert_dashboard_opens(out, n_samples=6)


def test_deeplift_on_torchscript_fails_up_front_with_one_line(grey_data, tmp_path):
    manifest, weights = grey_data
    ts = grey_torchscript(weights, tmp_path)
    out = tmp_path / "runs" / "ts-deeplift"
    cfg = grey_config(manifest, weights, out, explainers=["gradient", "deeplift"])
    cfg["model"] = {**cfg["model"], "torchscript": str(ts), "factory": None, "weights": None}
    with pytest.raises(XaiError, match=r"deeplift \(deeplift\): cannot explain a TorchScript model") as e:
        run(config_from_dict(cfg), out, progress=False)
    assert "\n" not in str(e.value) and not out.exists()  # refused before anything was written


def test_channel_and_normalisation_mismatches_get_one_line(grey_data, tmp_path):
    manifest, weights = grey_data
    cfg = grey_config(manifest, weights, tmp_path / "x")
    cfg["model"]["channels"] = 3  # wrong: the net's first conv takes 1 channel
    with pytest.raises(ModelError, match=r"model failed on a \(1, 3, 16, 16\) input: RuntimeError: .*channels") as e:
        run(config_from_dict(cfg), tmp_path / "x", progress=False)
    assert "\n" not in str(e.value)
    cfg["model"].update(channels=None, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    with pytest.raises(ModelError, match=r"model.mean has 3 values .* the model takes 1 channel"):
        run(config_from_dict(cfg), tmp_path / "x", progress=False)
    cfg["model"].update(mean=[0.5], std=[0.5], channels=2)
    with pytest.raises(XaiError, match="model.channels is 2; expected 1"):
        config_from_dict(cfg)
    cfg["model"].update(channels=None, input_size=[16])
    with pytest.raises(XaiError, match="model.input_size is"):
        config_from_dict(cfg)


def test_cli_runs_a_grey_model_from_yaml(grey_data, tmp_path, capsys):
    from xai_core.cli import main

    manifest, weights = grey_data
    cfg = grey_config(manifest, weights, tmp_path / "cli", explainers=["gradient"], metrics=["pointing_game"])
    cfg["model"]["channels"] = 1
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert load_config(tmp_path / "run.yaml").model.input_size == (SIZE, SIZE)
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    assert RunReader(tmp_path / "cli").manifest["status"] == "complete"
