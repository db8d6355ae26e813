"""Explain what matters (xai_core/sampling.py): ``sample`` per tag, seeded and recorded; the
prediction pass on every image, explanations only on the chosen pairs; bad values in one line."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from toy import CLASSES, SIZE, colour_net, make_dataset, toy_config
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError
from xai_core.inspect import planned_vs_actual
from xai_core.runner import run
from xai_core.sampling import SampleSpec, count_cutoffs, draw, parse_sample
from xai_core.summary import RunReader

METRICS = ["deletion_auc", "class_sensitivity", "sparseness"]


def _run(tmp_path, data, name, **over):
    cfg = config_from_dict(toy_config(data, tmp_path / name, metrics=METRICS, **over))
    return RunReader(run(cfg, tmp_path / name, progress=False))


def test_sample_explains_only_the_chosen_pairs(tmp_path):
    data = make_dataset(tmp_path / "data", n=12)
    full = _run(tmp_path, data, "full")
    part = _run(tmp_path, data, "part", sample={"TP": 0, "FP": "all", "FN": "all", "TN": 0.5})
    assert len(part.samples()) == len(full.samples()) == 12  # the prediction pass ran on every image
    lab, lab_full = part.labels(), full.labels()
    assert "TP" not in set(lab.tag)
    assert 0 < (lab.tag == "TN").sum() < (lab_full.tag == "TN").sum()
    # the same pairs' numbers as the full run (sampling changes which, never what)
    key = ["sample_index", "label", "explainer", "metric"]
    s, sf = part.scores().set_index(key), full.scores().set_index(key)
    pair = s[s.index.get_level_values("metric") != "class_sensitivity"]
    assert (pair["raw"].fillna(-9) == sf.loc[pair.index, "raw"].fillna(-9)).all()
    # label-agnostic metrics weigh only the images that were explained
    agn = part.scores()[part.scores().metric == "class_sensitivity"]
    assert set(agn.sample_index) == set(lab.sample_index)
    rec = part.manifest["sample"]
    assert rec["spec"] == {"TP": 0, "FP": "all", "FN": "all", "TN": 0.5} and rec["cutoffs"]["TN"] == 0.5
    assert planned_vs_actual(part.manifest)["passes"][0] == planned_vs_actual(part.manifest)["passes"][1]


def test_counts_keep_that_many_pairs_and_survive_a_resume(tmp_path):
    data = make_dataset(tmp_path / "data", n=12)
    over = dict(sample={"TP": 2, "TN": 3}, batch_size=4)
    cfg = config_from_dict(toy_config(data, tmp_path / "r", metrics=METRICS, **over))
    run(cfg, tmp_path / "r", progress=False, stop_after_parts=1)
    run(cfg, tmp_path / "r", progress=False, resume=True)
    whole = _run(tmp_path, data, "whole", **over)
    resumed = RunReader(tmp_path / "r")
    for r in (resumed, whole):
        tags = r.labels().tag.value_counts().to_dict()
        assert tags.get("TP") == 2 and tags.get("TN") == 3
    assert resumed.manifest["sample"] == whole.manifest["sample"]
    key = ["sample_index", "label"]
    assert resumed.labels()[key].sort_values(key).values.tolist() == whole.labels()[key].sort_values(key).values.tolist()


def test_draws_are_seeded_and_counts_cut_between_draws():
    assert draw(0, "a", 1) == draw(0, "a", 1) != draw(1, "a", 1)
    us = [0.1, 0.5, 0.3]
    cut = count_cutoffs({"TP": 2}, {"TP": us})["TP"]
    assert sum(u < cut for u in us) == 2
    assert count_cutoffs({"TP": 5}, {"TP": us})["TP"] == 2.0 and count_cutoffs({"TP": 0}, {"TP": us})["TP"] == 0.0


@pytest.mark.parametrize("raw, words", [
    ({"XX": 2}, "unknown tag 'XX'"), ({"TP": 1.5}, "sample.TP is 1.5"), ({"FN": -1}, "sample.FN is -1"),
    ({"TP": "some"}, "sample.TP is 'some'"), ({"TP": True}, "sample.TP is True"), ([1], "expected a map"),
])
def test_bad_sample_values_are_one_line(raw, words):
    with pytest.raises(ConfigError) as e:
        parse_sample(raw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_cli_refuses_a_bad_sample_before_writing(tmp_path):
    data = make_dataset(tmp_path / "data", n=3)
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(toy_config(data, out, sample={"XX": 2})))
    env = {"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(cfg)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode != 0 and "unknown tag 'XX'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not out.exists()


def test_api_sample_and_dashboard_count(tmp_path):
    import xai_core
    from xai_core.dashboard.tables import RunTables

    images = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    out = tmp_path / "nb"
    xai_core.explain(colour_net(), images, classes=CLASSES, activation="sigmoid", out=out,
                     explainers=["gradient"], metrics=["sparseness"], sample={"TN": 0, "FP": 0}, progress=False)
    r = RunReader(out)
    n = r.labels().sample_index.nunique()
    assert len(r.samples()) == 4 and n < 4
    assert RunTables.load(out).images_text == f"{n} of 4 images explained"
    assert SampleSpec().enabled is False
