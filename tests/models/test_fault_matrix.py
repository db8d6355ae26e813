"""The fault matrix for ONNX and served models (issue 19): SIGKILL at a commit point and
``--resume`` give the uninterrupted run; a served model replaced behind its URL is refused on
resume; a server killed mid-run then restarted, and a flaky server, give the same run too.
Real parts throughout: an ONNX file in ONNX Runtime, a real KServe ModelServer (``conftest``), a
loopback relay in front of it (``served.relay_server``) and real SIGKILLs (``kill_at_commit.py``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from served import MODEL, kserve_server, relay_server
from toy import SIZE, colour_net, contrast_net, toy_config
from xai_core.cli import main
from xai_core.config import config_from_dict
from xai_core.demo import MEAN, STD
from xai_core.runner import run
from xai_core.summary import RunReader

TESTS = Path(__file__).resolve().parents[1]
KEYS = {"samples": ["sample_index"], "labels": ["sample_index", "label"],
        "scores": ["sample_index", "label", "explainer", "metric"], "details": ["sample_index", "label", "explainer", "key"]}


def assert_same_run(a, b):
    """Every table and every map of two runs equal (rows in any order)."""
    ra, rb = RunReader(a), RunReader(b)
    assert ra.status == rb.status == "complete" and ra.parts() == rb.parts()
    for name, key in KEYS.items():
        x, y = (r.table(name).sort_values(key).reset_index(drop=True) for r in (ra, rb))
        assert len(x) > 0
        pd.testing.assert_frame_equal(x, y)
    for p in ra.parts():
        np.testing.assert_array_equal(ra._store(p)["images"][...], rb._store(p)["images"][...])
        for e in ra.explainers:
            np.testing.assert_array_equal(ra.saliency_part(e["name"], p), rb.saliency_part(e["name"], p))


def killed_run(config: dict, tmp_path: Path, *, after: int, table: str = "samples", pid: int = 0) -> subprocess.CompletedProcess:
    """``xai-core run`` of ``config`` in a subprocess, SIGKILLed (``pid``, 0: the runner itself)
    right after its ``after``-th write under tables/``table``/."""
    path = tmp_path / f"{Path(config['out']).name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, str(TESTS / "kill_at_commit.py"), str(after), table, str(pid), "--",
                           "run", "--config", str(path), "--quiet"], env=env, cwd=TESTS, capture_output=True,
                          text=True, timeout=600)


# --- ONNX ------------------------------------------------------------------------------------


def export_onnx(net, path: Path) -> Path:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.rand(2, 3, SIZE, SIZE),), str(path), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    return path


def onnx_config(toy_data, out, onnx: Path) -> dict:
    cfg = toy_config(toy_data, out, batch_size=3, explainers=[{"type": "occlusion", "params": {"window": 8, "stride": 4}}, "random"],
                     metrics=[{"type": "deletion_auc", "params": {"steps": 4}}, "pointing_game"],
                     counterfactual={"enabled": True, "layers": 1})
    cfg["model"] = {**cfg["model"], "factory": None, "onnx": str(onnx)}
    return cfg


def test_onnx_run_killed_mid_part_resumes_to_the_uninterrupted_run(toy_data, tmp_path):
    onnx = export_onnx(colour_net(), tmp_path / "net.onnx")
    cfg = onnx_config(toy_data, tmp_path / "killed", onnx)
    # Killed when part 2's arrays and scores are on disk but not its samples table (the commit).
    res = killed_run(cfg, tmp_path, after=3, table="scores")
    assert res.returncode == -signal.SIGKILL, res.stderr
    killed = RunReader(cfg["out"])
    assert killed.status == "running" and killed.parts() == [0, 1]
    assert (Path(cfg["out"]) / "tables" / "scores" / "part-000002.parquet").exists()  # the part in flight
    assert main(["run", "--resume", cfg["out"], "--quiet"]) == 0
    ref = config_from_dict(onnx_config(toy_data, tmp_path / "ref", onnx))
    run(ref, ref.out, progress=False)
    assert_same_run(cfg["out"], ref.out)
    assert RunReader(cfg["out"]).manifest["model"]["fast_forward"]["backend"] == "onnx"


def test_a_replaced_onnx_file_is_refused_on_resume(toy_data, tmp_path, capsys):
    onnx = export_onnx(colour_net(), tmp_path / "net.onnx")
    cfg = config_from_dict(onnx_config(toy_data, tmp_path / "run", onnx))
    run(cfg, cfg.out, progress=False, stop_after_parts=2)
    export_onnx(contrast_net(), onnx)  # another model in the same file, between the crash and the resume
    assert main(["run", "--resume", cfg.out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model onnx_sha256 changed" in err and "--force" in err
    assert RunReader(cfg.out).parts() == [0, 1]
    assert main(["run", "--resume", cfg.out, "--quiet", "--force"]) == 0


# --- served models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory):
    from xai_core.demo.dataset import generate_demo_dataset

    return generate_demo_dataset(tmp_path_factory.mktemp("faults"), n_train=0, n_test=3, seed=0)


def served_config(demo_data, out, url: str, **model) -> dict:
    return {
        "model": {"url": url, "activation": "sigmoid", "input_size": [64, 64], "mean": list(MEAN), "std": list(STD),
                  "request_batch": 64, "retries": 1, **model},
        "dataset": {"kind": "manifest", "path": str(demo_data), "split": "test"},
        "explainers": [{"type": "occlusion", "params": {"window": 16, "stride": 16}}, "random"],
        "metrics": [{"type": "deletion_auc", "params": {"steps": 4}}, "pointing_game"],
        "labels": {"threshold": 0.5, "top_k": 1},
        "batch_size": 1,
        "seed": 0,
        "out": str(out),
    }


@pytest.fixture(scope="module")
def served_reference(demo_data, kserve, tmp_path_factory):
    """The uninterrupted run through the real KServe server."""
    out = tmp_path_factory.mktemp("served") / "ref"
    cfg = config_from_dict(served_config(demo_data, out, kserve.url("v2")))
    return run(cfg, cfg.out, progress=False)


def test_served_run_killed_at_a_commit_resumes_to_the_uninterrupted_run(demo_data, kserve, served_reference, tmp_path):
    cfg = served_config(demo_data, tmp_path / "killed", kserve.url("v2"))
    res = killed_run(cfg, tmp_path, after=1)  # right after part 0 commits
    assert res.returncode == -signal.SIGKILL, res.stderr
    assert RunReader(cfg["out"]).parts() == [0]
    assert main(["run", "--resume", cfg["out"], "--quiet"]) == 0
    assert_same_run(cfg["out"], served_reference)


def test_a_server_killed_mid_run_then_restarted(demo_data, demo_torchscript, served_reference, tmp_path, capsys):
    """The runner loses its server after part 0: one line naming the URL, part 0 kept; the
    server comes back on the same port and --resume gives the uninterrupted run."""
    from served import free_port

    port = free_port()
    with kserve_server(demo_torchscript, tmp_path / "server1.log", port=port) as served:
        cfg = served_config(demo_data, tmp_path / "run", served.url("v2"))
        res = killed_run(cfg, tmp_path, after=1, pid=served.pid)  # the server dies right after part 0 commits
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"model server {served.url('v2')} is unreachable" in lines[0], res.stderr
    r = RunReader(cfg["out"])
    assert r.status == "failed" and r.parts() == [0]
    with kserve_server(demo_torchscript, tmp_path / "server2.log", port=port):
        assert main(["run", "--resume", cfg["out"], "--quiet"]) == 0
    assert_same_run(cfg["out"], served_reference)


def test_a_flaky_server_is_retried_to_the_same_run(demo_data, kserve, served_reference, tmp_path):
    with relay_server(kserve.base, fail_every=3) as relay:
        cfg = config_from_dict(served_config(demo_data, tmp_path / "run", f"{relay.base}/v2/models/{MODEL}/infer",
                                             retries=2))
        run(cfg, cfg.out, progress=False)
    assert relay.failed >= 3 and relay.posts > relay.failed  # every third request failed and was retried
    assert_same_run(cfg.out, served_reference)


def test_an_answer_cut_off_midway_is_retried_and_then_reported_as_unreachable(demo_data, kserve, served_reference,
                                                                               tmp_path, capsys):
    """A server dying while it answers breaks the connection mid-body (IncompleteRead): the
    same failure as a refused connection, seen later — retried, and after the last attempt one
    line saying the server is unreachable (it was "request failed" with urllib3's text, at once)."""
    with relay_server(kserve.base, break_every=3) as relay:
        cfg = config_from_dict(served_config(demo_data, tmp_path / "run", f"{relay.base}/v2/models/{MODEL}/infer",
                                             retries=2))
        run(cfg, cfg.out, progress=False)
    assert relay.broken >= 3
    assert_same_run(cfg.out, served_reference)
    with relay_server(kserve.base, break_every=1) as relay:  # every answer cut off
        cfg = served_config(demo_data, tmp_path / "run2", f"{relay.base}/v2/models/{MODEL}/infer", retries=1)
        path = tmp_path / "run2.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert main(["run", "--config", str(path), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"model server {relay.base}/v2/models/{MODEL}/infer is unreachable (the connection broke in the middle " \
           "of the answer) after 2 attempt(s)" in lines[0]


def test_a_model_replaced_behind_its_url_is_refused_on_resume(demo_data, kserve, tmp_path, capsys):
    meta = {"name": MODEL, "versions": ["1"], "platform": "pytorch_torchscript",
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 3, 64, 64]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, -1]}]}
    with relay_server(kserve.base, metadata=meta) as relay:
        cfg = config_from_dict(served_config(demo_data, tmp_path / "run", f"{relay.base}/v2/models/{MODEL}/infer"))
        run(cfg, cfg.out, progress=False, stop_after_parts=1)
        assert RunReader(cfg.out).manifest["model"]["server_model"]["versions"] == ["1"]
        relay.metadata = {**meta, "versions": ["2"]}  # the server now says it serves version 2
        assert main(["run", "--resume", cfg.out, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "served model (name democnn, versions ['1'], platform pytorch_torchscript then, " \
               "name democnn, versions ['2'], platform pytorch_torchscript now) changed" in err and "--force" in err
        assert RunReader(cfg.out).parts() == [0]
        assert main(["run", "--resume", cfg.out, "--quiet", "--force"]) == 0
