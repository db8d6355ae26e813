"""`model.device` and `model.precision` (issue 15 items 1 and 5) on a machine without a GPU:
`auto` resolves to the CPU and says so in the manifest and in `xai-core inspect`; a device
that does not exist (`tpu`, `cuda:3` here) is refused with one line before anything is
written; bf16 autocast runs on the CPU for forward-only passes while gradient passes stay
float32; fp16 is refused on the CPU. (`device: cpu` reproducing the code before devices bit
for bit is tests/test_golden_cpu.py; the device rules on an accelerator are
tests/test_device_rules.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from toy import toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.devices import cuda_count, resolve_device
from xai_core.errors import ConfigError, ModelError
from xai_core.runner import run
from xai_core.summary import RunReader

pytestmark = pytest.mark.skipif(cuda_count() > 0, reason="these tests describe a machine without CUDA")


def _config(data, out, explainers=("gradient", "occlusion"), metrics=("deletion_auc", "insertion_auc"), **model):
    raw = toy_config(data, out, explainers=list(explainers), metrics=list(metrics))
    raw["model"].update({"fast_forward": "off", **model})
    return raw


def test_auto_resolves_to_the_cpu_and_the_manifest_and_inspect_say_so(toy_data, tmp_path, capsys):
    out = run(config_from_dict(_config(toy_data, tmp_path / "run")), tmp_path / "run", progress=False)
    model = json.loads((out / "manifest.json").read_text())["model"]
    assert model["device"]["requested"] == "auto" and model["device"]["resolved"] == "cpu"
    assert "sees no CUDA device" in model["device"]["reason"] and model["device"]["name"]
    assert model["precision"] == "fp32"
    assert model["batches"]["explain_batch_size"] == "auto" and model["batches"]["resolved"] == 64
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "device: cpu (" in text and "fp32, batch 64" in text and "auto: torch" in text
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"]["resolved"] == "cpu"


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "CUDA", 3])
def test_an_unknown_device_is_refused_by_the_config_with_one_line(toy_data, tmp_path, device):
    with pytest.raises(ConfigError, match="model.device") as e:
        config_from_dict(_config(toy_data, tmp_path / "run", device=device))
    assert "\n" not in str(e.value)
    assert "auto | cpu | cuda | cuda:N" in str(e.value) or "expected a string" in str(e.value)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_an_unavailable_device_is_refused_before_anything_is_written(toy_data, tmp_path, capsys, device):
    cfg = config_from_dict(_config(toy_data, tmp_path / "run", device=device))
    with pytest.raises(ModelError, match=f"model.device is '{device}' but torch .* sees no CUDA device"):
        run(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    # The CLI: one line, exit 2, nothing written either.
    path = tmp_path / "run.yaml"
    path.write_text(json.dumps(_config(toy_data, tmp_path / "cli")))
    assert main(["run", "--config", str(path), "--quiet", "--set", f"model.device={device}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sees no CUDA device" in err and "use device: cpu" in err
    assert not (tmp_path / "cli").exists()


def test_resolve_device_names_the_cpu():
    device, info = resolve_device("cpu")
    assert device == torch.device("cpu") and info["resolved"] == "cpu" and info["reason"] == "requested"


def test_forward_only_models_take_no_gpu_and_no_precision(tmp_path):
    from xai_core.models.loading import ModelSpec

    with pytest.raises(ModelError, match="apply to PyTorch models"):
        ModelSpec(onnx=str(tmp_path / "m.onnx"), device="cuda").validate()
    with pytest.raises(ModelError, match="apply to PyTorch models"):
        ModelSpec(url="http://127.0.0.1:1/v2/models/m/infer", precision="bf16").validate()
    ModelSpec(onnx=str(tmp_path / "m.onnx"), device="cpu").validate()


def test_fp16_is_refused_on_the_cpu_before_anything_is_written(toy_data, tmp_path):
    cfg = config_from_dict(_config(toy_data, tmp_path / "run", precision="fp16"))
    with pytest.raises(ModelError, match="float16 autocast needs a CUDA device") as e:
        run(cfg, tmp_path / "run", progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="model.precision"):
        config_from_dict(_config(toy_data, tmp_path / "run", precision="fp8"))


def test_explain_batch_size_takes_auto_or_a_number(toy_data, tmp_path):
    raw = _config(toy_data, tmp_path / "run")
    assert config_from_dict(raw).explain_batch_size == "auto"
    assert config_from_dict({**raw, "explain_batch_size": 8}).explain_batch_size == 8
    with pytest.raises(ConfigError, match="explain_batch_size"):
        config_from_dict({**raw, "explain_batch_size": "big"})


def test_bf16_runs_forward_passes_under_autocast_and_gradients_in_fp32(toy_data, tmp_path):
    """bf16 on the CPU (autocast works there): gradient maps equal the fp32 run's bit for bit;
    forward-only outputs (predictions, occlusion maps, curves) move by bfloat16 rounding."""
    explainers = ("gradient", "integrated_gradients", "gradcam", "occlusion", "rise")
    metrics = ("deletion_auc", "insertion_auc", "sparseness")
    fp32 = run(config_from_dict(_config(toy_data, tmp_path / "fp32", explainers, metrics)), tmp_path / "fp32",
               progress=False)
    bf16 = run(config_from_dict(_config(toy_data, tmp_path / "bf16", explainers, metrics, precision="bf16",
                                        fast_forward="auto")), tmp_path / "bf16", progress=False)
    a, b = RunReader(fp32), RunReader(bf16)
    man = json.loads((bf16 / "manifest.json").read_text())["model"]
    assert man["precision"] == "bf16"
    assert man["fast_forward"]["backend"] == "torch" and "precision is bf16" in man["fast_forward"]["reason"]
    pa, pb = (np.stack(r.samples()["probs"].to_numpy()) for r in (a, b))
    assert 0 < np.abs(pa - pb).max() < 0.02  # bfloat16 keeps 8 bits of mantissa
    la, lb = a.labels(), b.labels()
    assert list(la["label"]) == list(lb["label"]), "the same labels are explained"
    for name in ("gradient", "integrated_gradients", "gradcam"):
        for row in la.itertuples():
            np.testing.assert_array_equal(b.saliency(name, row.part, row.map_offset),
                                          a.saliency(name, row.part, row.map_offset), err_msg=name)
    moved = [np.abs(b.saliency(e, r.part, r.map_offset) - a.saliency(e, r.part, r.map_offset)).max()
             / max(np.abs(a.saliency(e, r.part, r.map_offset)).max(), 1e-12)
             for e in ("occlusion", "rise") for r in la.itertuples()]
    assert 0 < max(moved) < 0.05  # perturbation maps from bf16 passes: a few per cent of their scale at most
    sa, sb = (r.scores().sort_values(["sample_index", "label", "explainer", "metric"]) for r in (a, b))
    diff = np.abs(sa["raw"].to_numpy() - sb["raw"].to_numpy())
    assert np.nanmax(diff) < 0.02
    grad_only = (sa["explainer"].isin(["gradient", "integrated_gradients", "gradcam"])
                 & (sa["metric"] == "sparseness")).to_numpy()
    assert np.nanmax(diff[grad_only]) == 0.0  # a map-only score of a gradient map: unchanged
