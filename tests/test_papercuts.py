"""The papercuts of issue 16, item 5, each one line and each tested: a scalar ``mean``, a
channels-last model (``model.layout``), the factory's module found beside the configuration,
localisation metrics refused on a dataset without boxes or masks, ``inspect`` showing a failed
run's error, ``list | head`` without a BrokenPipeError, CLI errors before ``import torch``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from toy import SIZE, toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict, load_config
from xai_core.errors import ConfigError, ModelError
from xai_core.models.loading import load_model
from xai_core.runner import run

ROOT = Path(__file__).resolve().parents[1]


def test_a_scalar_mean_is_one_value_for_every_channel(toy_data, tmp_path):
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "o", model={
        "factory": "toy:colour_net", "input_size": SIZE, "mean": 0, "std": 1}))
    assert cfg.model.mean == (0.0,) and cfg.model.std == (1.0,)
    handle = load_model(cfg.model, 3)
    assert handle.channels == 3 and handle.module.mean.flatten().tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConfigError, match=r"model.mean \[0.1, 0.2\] / std \[1, 1, 1\]: expected equal lengths"):
        config_from_dict(toy_config(toy_data, tmp_path / "o", model={
            "factory": "toy:colour_net", "mean": [0.1, 0.2], "std": [1, 1, 1]}))


NETS = '''
import torch
from torch import nn


class ChannelsLast(nn.Module):
    """Takes (N, H, W, C), as a Keras-style port would."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x.permute(0, 3, 1, 2))).mean((2, 3)))


def channels_last():
    return ChannelsLast().eval()


def where():
    return nn.Sequential(nn.Conv2d(3, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()

WHERE = "{where}"
'''


def write_factory(folder: Path, module: str, where: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(NETS.replace("{where}", where))


def test_channels_last_models_get_a_layout_and_a_hint(toy_data, tmp_path):
    write_factory(tmp_path / "cfg", "nets_layout", "cfg")
    raw = toy_config(toy_data, tmp_path / "o", model={"factory": "nets_layout:channels_last", "input_size": SIZE},
                     explainers=["gradient", "gradcam"], metrics=[])
    (tmp_path / "cfg" / "run.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ModelError, match=r"failed on a \(1, 3, 32, 32\) input.*the network runs on "
                                         r"channels-last \(N, H, W, C\) input: set model.layout: nhwc$"):
        load_model(load_config(tmp_path / "cfg" / "run.yaml").model, 3)
    cfg = load_config(tmp_path / "cfg" / "run.yaml", ["model.layout=nhwc"])
    run(cfg, cfg.out, progress=False)
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["status"] == "complete"
    with pytest.raises(ConfigError, match=r"model.layout is 'chw'; expected one of \('nchw', 'nhwc'\)"):
        load_config(tmp_path / "cfg" / "run.yaml", ["model.layout=chw"])


def test_the_factory_module_is_found_beside_the_config_first(toy_data, tmp_path, monkeypatch):
    """Every other path of a configuration is relative to its file; so is the factory's module
    now — before the current directory, which still works."""
    write_factory(tmp_path / "cfg", "nets_where", "cfg")
    write_factory(tmp_path / "cwd", "nets_where", "cwd")
    write_factory(tmp_path / "cwd", "nets_cwd_only", "cwd")
    raw = toy_config(toy_data, tmp_path / "o", model={"factory": "nets_where:where", "input_size": SIZE})
    (tmp_path / "cfg" / "run.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "cwd")
    cfg = load_config(tmp_path / "cfg" / "run.yaml")
    assert cfg.model.factory_path == (str((tmp_path / "cfg").resolve()),)
    load_model(cfg.model, 3)
    assert sys.modules["nets_where"].WHERE == "cfg"
    cwd_only = load_config(tmp_path / "cfg" / "run.yaml", ["model.factory=nets_cwd_only:where"])
    load_model(cwd_only.model, 3)
    assert sys.modules["nets_cwd_only"].WHERE == "cwd"
    missing = load_config(tmp_path / "cfg" / "run.yaml", ["model.factory=nets_nowhere:where"])
    with pytest.raises(ModelError, match=rf"cannot import module 'nets_nowhere' .*looked in {tmp_path / 'cfg'}"):
        load_model(missing.model, 3)


def test_localisation_metrics_need_boxes_or_masks(toy_data, tmp_path):
    for c in ("red", "green", "blue"):
        (tmp_path / "folder" / c).mkdir(parents=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(tmp_path / "folder" / c / "1.png")
    raw = toy_config(toy_data, tmp_path / "o", dataset={"kind": "imagefolder", "path": str(tmp_path / "folder")},
                     metrics=["deletion_auc", "pointing_game", "iosr"])
    with pytest.raises(ConfigError, match=r"metrics \['pointing_game', 'iosr'\] score maps against object boxes or "
                                          r"masks, but dataset .* has none \(an image folder has none\)"):
        run(config_from_dict(raw), tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()  # refused before anything was written
    lines = [json.loads(ln) for ln in Path(toy_data).read_text().splitlines()]
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({k: v for k, v in ln.items() if k not in ("boxes", "mask")}) + "\n"
                            for ln in lines))
    (tmp_path / "classes.json").write_text((Path(toy_data).parent / "classes.json").read_text())
    for p in (Path(toy_data).parent / "images").iterdir():
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / p.name).write_bytes(p.read_bytes())
    raw = toy_config(bare, tmp_path / "o2", metrics=["pointing_game"])
    with pytest.raises(ConfigError, match=r"has none \(no item of it has one\)"):
        run(config_from_dict(raw), tmp_path / "o2", progress=False)
    run(config_from_dict(toy_config(bare, tmp_path / "o3", metrics=["deletion_auc"])), tmp_path / "o3", progress=False)


def test_inspect_shows_the_error_of_a_failed_run(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "dashboard"))
    import dash_runs

    run_dir = dash_runs.write_failed(tmp_path / "failed")
    error = json.loads((run_dir / "manifest.json").read_text())["error"]
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"error: {error}" in out.splitlines()


def _cli(*args: str, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from xai_core.cli import main
        rc = main(sys.argv[1:])
        print("torch imported" if "torch" in sys.modules else "no torch", file=sys.stderr)
        sys.exit(rc)
        """), *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_errors_do_not_wait_for_torch(tmp_path, toy_data):
    missing = _cli("run", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "no torch" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(toy_config(toy_data, tmp_path / "o", model={"factory": "toy:colour_net",
                                                                               "input_size": 4})))
    p = _cli("run", "--config", str(bad))
    assert p.returncode == 2 and "model.input_size is (4, 4)" in p.stderr and "no torch" in p.stderr
    resume = _cli("run", "--resume", str(tmp_path))
    assert resume.returncode == 2 and "no torch" in resume.stderr


def test_list_into_a_closed_pipe_is_quiet():
    cmd = f"{sys.executable} -m xai_core list explainers | head -n 2"
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert len(p.stdout.splitlines()) == 2
    assert "BrokenPipeError" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 0
