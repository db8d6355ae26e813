"""Runner behaviour: resume after SIGKILL equals an uninterrupted run; failures are recorded."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from toy import toy_config
from xai_core.config import config_from_dict
from xai_core.runner import run
from xai_core.summary import RunReader

TESTS = Path(__file__).parent


def tables(run_dir):
    r = RunReader(run_dir)
    out = {}
    keys = {"samples": ["sample_index"], "labels": ["sample_index", "label"],
            "scores": ["sample_index", "label", "explainer", "metric"]}
    for name, key in keys.items():
        out[name] = r.table(name).sort_values(key).reset_index(drop=True)
    maps = {}
    for _, row in out["labels"].iterrows():
        for e in r.explainers:
            maps[(row.sample_index, row.label, e["name"])] = r.saliency(e["name"], row.part, row.map_offset)
    return out, maps


def assert_same_run(a, b):
    ta, ma = tables(a)
    tb, mb = tables(b)
    for name in ta:
        pd.testing.assert_frame_equal(ta[name], tb[name])
    assert ma.keys() == mb.keys()
    for k in ma:
        np.testing.assert_array_equal(ma[k], mb[k])


def test_resume_after_sigkill_equals_uninterrupted_run(toy_data, tmp_path):
    light = dict(batch_size=2, explainers=["gradient", "random"],
                 metrics=[{"type": "deletion_auc", "params": {"steps": 8}}, "pointing_game"])
    cfg = toy_config(toy_data, tmp_path / "killed", **light)
    cfg["model"]["factory"] = "toy:slow_colour_net"
    cfg["dataset"]["path"] = str(toy_data)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "xai_core", "run", "--config", str(path), "--quiet"],
                            env=env, cwd=TESTS, stderr=subprocess.PIPE)
    samples_dir = tmp_path / "killed" / "tables" / "samples"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = list(samples_dir.glob("part-*.parquet")) if samples_dir.is_dir() else []
        if len(done) >= 2:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(samples_dir.glob("part-*.parquet")))
    assert 2 <= n_done < 6, "the kill should land in the middle of the run"
    assert RunReader(tmp_path / "killed").status == "running"

    res = subprocess.run([sys.executable, "-m", "xai_core", "run", "--resume", str(tmp_path / "killed"), "--quiet"],
                         env=env, cwd=TESTS, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert RunReader(tmp_path / "killed").status == "complete"

    ref = config_from_dict(toy_config(toy_data, tmp_path / "ref", **light))
    run(ref, ref.out, progress=False)
    assert_same_run(tmp_path / "killed", ref.out)


def test_in_process_interrupt_and_resume(toy_data, tmp_path):
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "a", batch_size=3))
    run(cfg, cfg.out, progress=False, stop_after_parts=2)
    assert len(RunReader(cfg.out).parts()) == 2
    run(cfg, cfg.out, resume=True, progress=False)
    ref = config_from_dict(toy_config(toy_data, tmp_path / "b", batch_size=3))
    run(ref, ref.out, progress=False)
    assert_same_run(cfg.out, ref.out)


def test_failure_is_recorded_and_nothing_is_lost(toy_data, tmp_path):
    from xai_core.errors import DatasetError

    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", batch_size=4))
    run(cfg, cfg.out, progress=False, stop_after_parts=1)
    (toy_data.parent / "images" / "s010.png").write_bytes(b"broken")
    with pytest.raises(DatasetError, match="s010.*corrupt"):
        run(cfg, cfg.out, resume=True, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "failed" and "s010" in r.manifest["error"]
    assert r.parts() == [0, 1]  # the parts before the broken image are kept


def test_existing_run_is_not_overwritten_silently(toy_data, tmp_path):
    from xai_core.errors import SummaryError

    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run"))
    run(cfg, cfg.out, progress=False)
    with pytest.raises(SummaryError, match="--resume"):
        run(cfg, cfg.out, progress=False)
    run(cfg, cfg.out, progress=False, overwrite=True)
    assert RunReader(cfg.out).status == "complete"


def test_optional_analyses_are_stored(toy_data, tmp_path):
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=["gradient", "random"],
                                      metrics=["iosr"], sanity={"enabled": True, "images": 4},
                                      uncertainty={"enabled": True, "passes": 4}))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    # The random map ignores the model, so randomising the model cannot change it: it fails.
    assert r.manifest["sanity"]["random"]["passed"] is False
    assert r.manifest["sanity"]["random"]["final_similarity"] == pytest.approx(1.0)
    labels = r.labels()
    assert labels["prob_std"].notna().all() and (labels["ci_low"] <= labels["ci_high"]).all()
    plain = config_from_dict(toy_config(toy_data, tmp_path / "plain", explainers=["gradient"], metrics=["iosr"]))
    run(plain, plain.out, progress=False)
    assert "sanity" not in RunReader(plain.out).manifest
    assert RunReader(plain.out).labels()["prob_std"].isna().all()


def test_per_pair_explainer_details_are_stored(toy_data, tmp_path):
    anchors = {"type": "anchors", "params": {"max_passes": 200, "initial_samples": 16, "draw_size": 8}}
    ig = {"type": "integrated_gradients", "params": {"steps": 16}}
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=[ig, anchors, "gradient"],
                                      metrics=["iosr"]))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    labels, det = r.labels(), r.details()
    # Every map gets its measured sign (has_negative); beyond it, gradient has nothing to add.
    assert set(det[det["key"] == "has_negative"]["explainer"]) == {"integrated_gradients", "anchors", "gradient"}
    assert set(det[det["key"] != "has_negative"]["explainer"]) == {"integrated_gradients", "anchors"}
    for (exp, key), g in det.groupby(["explainer", "key"]):
        # one value per explained (image, label), keyed like the labels table
        assert sorted(zip(g["sample_index"], g["label"])) == sorted(zip(labels["sample_index"], labels["label"])), key
    keys = set(det[det["explainer"] == "anchors"]["key"])
    assert {"precision", "coverage", "anchor_size"} <= keys
    prec = det[(det["explainer"] == "anchors") & (det["key"] == "precision")]["value"]
    assert prec.between(0, 1).all()
    ig_err = det[det["key"] == "completeness_error"]["value"]
    assert len(ig_err) and (ig_err >= 0).all()
    plain = config_from_dict(toy_config(toy_data, tmp_path / "plain", explainers=["gradient"], metrics=["iosr"]))
    run(plain, plain.out, progress=False)
    assert set(RunReader(plain.out).details()["key"]) == {"has_negative"}


def test_metrics_reuse_the_batch_probabilities(toy_data, tmp_path):
    # One prediction pass per image, then exactly `steps` passes per (image, label) for the
    # deletion curve: p(x) comes from the batch's own pass, not from another one per pair.
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=["random"],
                                      metrics=[{"type": "deletion_auc", "params": {"steps": 5}}]))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.manifest["timing"]["model_passes"] == len(r.samples()) + 5 * len(r.labels())
