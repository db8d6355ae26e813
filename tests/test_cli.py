import json

import pytest
import yaml

from toy import toy_config
from xai_core.cli import main
from xai_core.summary import FORMAT_VERSION


@pytest.fixture
def config_file(toy_data, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(toy_config(toy_data, tmp_path / "out")))
    return path


def test_run_then_inspect_json(config_file, tmp_path, capsys):
    assert main(["run", "--config", str(config_file), "--set", "labels.top_k=1"]) == 0
    # the closing line says where the time went, the fast-forward decision's share of setup included
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("done in "), line
    timing = json.loads((tmp_path / "out" / "manifest.json").read_text())["timing"]
    assert set(timing["setup_s"]) == {"model", "fast_forward", "plan"}  # the plan: before the first pass
    # (this light run skips the fast-path probe: its decision takes no time worth a mention)
    assert ("of it the fast-forward decision" in line) == (timing["setup_s"]["fast_forward"] >= 0.05)
    assert main(["inspect", str(tmp_path / "out"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format_version"] == FORMAT_VERSION == 3 and info["status"] == "complete"
    assert info["n_samples"] == 12
    assert set(info["tags"]) == {"TP", "FP", "FN", "TN"}
    assert sum(info["tags"].values()) == info["n_explained"]
    assert set(info["scores"]) == {"gradient", "gradcam", "integrated_gradients", "random"}
    for row in info["scores"].values():
        for v in row.values():
            assert 0.0 <= v <= 1.0
    # The override reached the stored config.
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["config"]["labels"]["top_k"] == 1


def test_list_registries(capsys):
    assert main(["list", "explainers", "--json"]) == 0
    names = {e["name"] for e in json.loads(capsys.readouterr().out)}
    assert {"gradient", "gradcam", "integrated_gradients", "random"} <= names
    assert main(["list", "metrics", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert all("higher_is_better" in m and "category" in m for m in metrics)


@pytest.mark.parametrize("override, message", [
    ("explainers=[nope]", "unknown explainer 'nope'"),
    ("metrics=[{type: deletion_auc, params: {stepz: 3}}]", "unknown parameter 'stepz'"),
    ("model.activation=relu", "model.activation is 'relu'"),
    ("labels.threshold=2", "labels.threshold is 2"),
    ("explainers=[gradient, gradient]", "used twice"),
])
def test_config_errors_are_one_line(config_file, capsys, override, message):
    assert main(["run", "--config", str(config_file), "--set", override, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_missing_config_file(capsys):
    assert main(["run", "--config", "/nonexistent.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_errors(config_file, capsys):
    assert main(["run", "--config", str(config_file), "--set", "model.factory=toy:nothing", "--quiet"]) == 2
    assert "no callable 'nothing'" in capsys.readouterr().err
    assert main(["run", "--config", str(config_file), "--set", "model.input_size=[32, 32]",
                 "--set", "dataset.classes=[red, green, blue, extra]", "--quiet"]) == 2
    assert "expected (N, 4) logits" in capsys.readouterr().err


def test_json_output_is_strict(capsys):
    # Unbounded metric ranges (robustness metrics) must not print as bare Infinity.
    assert main(["list", "metrics", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out
    ranges = {m["name"]: m["value_range"] for m in json.loads(out)}
    assert ranges["max_sensitivity"] == [0.0, "inf"]
