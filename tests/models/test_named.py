"""Models by name (xai_core/models/named.py): ``model: {timm: NAME, weights: FILE}`` and
``model: {hf: DIR}`` in a configuration and ``xai_core.explain("timm:NAME", …)`` / a directory,
with the model's own labels and preprocessing, recorded; nothing downloaded, a missing file one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from timm_import import timm  # noqa: E402  (first: makes torchvision importable beside torch CPU)
from safetensors.torch import save_file  # noqa: E402
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor  # noqa: E402

import xai_core  # noqa: E402
from xai_core.config import config_from_dict  # noqa: E402
from xai_core.errors import ConfigError, ModelError, XaiError  # noqa: E402
from xai_core.models.loading import load_model  # noqa: E402

KW = dict(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
LIGHT = dict(explainers=["gradient", "attention_rollout"], metrics=["sparseness"], progress=False)


def _timm_net(**over):
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**KW, **over}).eval()


def _images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_explain_timm_by_name_with_safetensors_weights_uses_its_labels_and_preprocessing(tmp_path):
    net = _timm_net()
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    run = xai_core.explain("timm:vit_tiny_patch16_224", _images(), weights=tmp_path / "w.safetensors",
                           factory_kwargs=KW, out=tmp_path / "run", **LIGHT)
    assert len(run.classes) == 1000 and run.classes[:2] == ["tench", "goldfish"]   # timm: an ImageNet-1k head
    model = run.manifest["config"]["model"]
    assert model["timm"] == "vit_tiny_patch16_224" and model["input_size"] == [32, 32]
    assert model["mean"] == [0.5, 0.5, 0.5] and model["std"] == [0.5, 0.5, 0.5]    # timm's ViT statistics
    pre = model["preprocessing"]
    assert "resolve_data_config" in pre["source"] and pre["interpolation"] == "bicubic" and pre["crop_pct"] == 0.9
    assert set(pre["applied"]) == {"mean", "std", "input_size"}
    assert run.manifest["model"]["weights_sha256"]
    # The loaded network is the saved one: the run's gradient maps equal the in-memory model's.
    same = xai_core.explain(net, _images(), classes="imagenet", mean=0.5, std=0.5, out=tmp_path / "mem", **LIGHT)
    for sid in run.samples.sample_id:
        a, b = run.map(sid, explainer="gradient"), same.map(sid, explainer="gradient")
        torch.testing.assert_close(torch.as_tensor(a), torch.as_tensor(b))
    out = subprocess.run([sys.executable, "-m", "xai_core", "inspect", str(tmp_path / "run")], capture_output=True,
                         text=True, check=True).stdout
    assert "model: timm vit_tiny_patch16_224 (weights w.safetensors): 32×32 px, mean [0.5, 0.5, 0.5]" in out
    assert "fused" not in out and "read at row 0 (class token)" in out


def test_timm_config_with_a_state_dict_and_the_one_line_errors(tmp_path):
    net = _timm_net(num_classes=3)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    raw = {"model": {"timm": "vit_tiny_patch16_224", "weights": "w.pt", "factory_kwargs": {**KW, "num_classes": 3}},
           "dataset": {"kind": "imagefolder", "path": str(tmp_path)}, "explainers": ["gradient"], "metrics": []}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert cfg.model.mean == (0.5, 0.5, 0.5) and cfg.model.input_size == (32, 32) and cfg.dataset.classes is None
    handle = load_model(cfg.model, 3)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(handle(x), net((x - 0.5) / 0.5))
    for model, pattern in (({"weights": "missing.pt"}, "weights file .*missing.pt' does not exist"),
                           ({"timm": "no_such_net"}, "model.timm 'no_such_net': RuntimeError: Unknown model"),
                           ({"timm": None, "hf": "nowhere"}, "model.hf .*nowhere' has no config.json")):
        bad = {**raw, "model": {**raw["model"], **model}}
        with pytest.raises(XaiError, match=pattern) as e:
            load_model(config_from_dict(bad, base_dir=tmp_path).model, 3)
        assert "\n" not in str(e.value)


def test_explain_an_hf_directory_with_its_labels_and_image_processor(tmp_path):
    torch.manual_seed(0)
    hf = ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64,
                                             id2label={0: "cat", 1: "dog"}, label2id={"cat": 0, "dog": 1}))
    hf.save_pretrained(tmp_path / "hf")
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.4, 0.5, 0.6],
                      image_std=[0.2, 0.3, 0.4]).save_pretrained(tmp_path / "hf")
    run = xai_core.explain(tmp_path / "hf", torch.rand(2, 3, 40, 48), out=tmp_path / "run", **LIGHT)
    assert run.classes == ["cat", "dog"]
    model = run.manifest["config"]["model"]
    assert model["mean"] == [0.4, 0.5, 0.6] and model["std"] == [0.2, 0.3, 0.4] and model["input_size"] == [32, 32]
    assert model["preprocessing"]["interpolation"] == "bilinear" and run.manifest["model"]["weights_sha256"]
    with pytest.raises(ConfigError, match="weights applies to model.factory and model.timm"):
        xai_core.explain(tmp_path / "hf", _images(), weights=tmp_path / "x.pt", out=tmp_path / "r2", **LIGHT)


def test_cli_run_of_a_timm_config_records_and_prints_the_models_preprocessing(toy_data, tmp_path, capsys):
    import yaml

    from toy import CLASSES, SIZE, toy_config
    from xai_core.cli import main

    kw = {**KW, "img_size": SIZE, "num_classes": len(CLASSES)}
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, **kw)
    save_file(net.state_dict(), str(tmp_path / "vit.safetensors"))
    cfg = toy_config(toy_data, tmp_path / "out", explainers=["attention_relevance"], metrics=["sparseness"])
    cfg["model"] = {"timm": "vit_tiny_patch16_224", "weights": "vit.safetensors", "factory_kwargs": kw,
                    "activation": "softmax"}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"model: timm vit_tiny_patch16_224 (weights vit.safetensors): {SIZE}×{SIZE} px, mean [0.5, 0.5, 0.5]" in out
    assert "read at row 0 (class token)" in out
