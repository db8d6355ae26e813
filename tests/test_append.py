"""Open-ended runs (xai_core.append): batches committed as parts while the run grows, readable by
the dashboard's reader at every step, reopened where they stopped, refused for another
configuration; an appended image gets the maps xai_core.explain gives it alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import xai_core
from toy import CLASSES, SIZE, colour_net
from xai_core.append import LiveExplainer, RunLog
from xai_core.config import config_from_dict
from xai_core.dashboard import list_runs, open_run
from xai_core.data.memory import Item
from xai_core.errors import ConfigError, SummaryError

EXPLAINERS = ["gradient", {"type": "occlusion", "params": {"window": 8, "stride": 4}}]


def live(explainers=EXPLAINERS, **over) -> LiveExplainer:
    cfg = config_from_dict({
        "model": {"module": "toy.ColourNet", "activation": "sigmoid", "input_size": [SIZE, SIZE], **over},
        "dataset": {"kind": "memory", "classes": CLASSES},
        "explainers": explainers, "metrics": [{"type": "deletion_auc", "params": {"steps": 4}}],
        "labels": {"top_k": 1}})
    return LiveExplainer(cfg, network=colour_net())


@pytest.fixture
def pictures(toy_data):
    rows = [json.loads(line) for line in toy_data.read_text().splitlines()]
    return [np.asarray(Image.open(toy_data.parent / r["image"]).convert("RGB")) for r in rows]


def test_parts_are_committed_as_they_arrive_and_the_log_reopens(tmp_path, pictures):
    logdir, ex = tmp_path / "logs", live()
    with RunLog.open(logdir / "served", ex) as log:
        assert list_runs(logdir)[0].status == "running"
        a = log.append([Item(pictures[0], id="req1-0")])
        # readable while open: one part, totals = what is committed
        t = open_run(logdir, "served").tables
        assert t.n_samples == 1 and t.manifest["progress"]["total_samples"] == 1
        b = log.append([Item(pictures[1], id="req2-0"), Item(pictures[2], id="req2-1")], targets=[[0], [1, 2]])
        assert (a.part, b.part) == (0, 1) and b.sample_ids == ["req2-0", "req2-1"]
        assert [b.result["labels"]["label"][r] for r in b.labels_of(1)] == [1, 2]  # exactly the requested labels
        with pytest.raises(SummaryError, match="is being written by process"):  # one writer at a time
            RunLog.open(logdir / "served", live())
    info = list_runs(logdir)[0]
    assert info.status == "complete" and (info.done_samples, info.total_samples) == (3, 3)
    m = json.loads((logdir / "served" / "manifest.json").read_text())
    assert m["open_ended"] is True and m["progress"]["total_parts"] == 2 and m["dataset"]["n_items"] == 3
    sha = m["dataset"]["sha256"]
    with RunLog.open(logdir / "served", live()) as log:  # continues after the last committed part
        c = log.append([Item(pictures[3], id="req3-0")])
    assert c.part == 2
    r = xai_core.open_run(logdir / "served")
    assert list(r.samples["sample_id"]) == ["req1-0", "req2-0", "req2-1", "req3-0"]
    assert list(r.samples["sample_index"]) == [0, 1, 2, 3]
    assert r.manifest["dataset"]["sha256"] != sha and r.manifest["progress"]["done_parts"] == 3
    assert xai_core.open_run(logdir / "served")._fresh().verify()["parts"] == 3


def test_a_log_of_another_configuration_is_refused(tmp_path, pictures):
    with RunLog.open(tmp_path / "served", live()) as log:
        log.append([Item(pictures[0])])
    with pytest.raises(ConfigError, match="explainers differ"):
        RunLog.open(tmp_path / "served", live(explainers=["gradient"]))
    assert not (tmp_path / "served" / ".lock").exists()  # the refused open let go of the lock
    run_dir = tmp_path / "plain"
    xai_core.explain(colour_net(), pictures[:1], classes=CLASSES, out=run_dir, explainers=["gradient"], metrics=[],
                     progress=False)
    with pytest.raises(ConfigError, match="not open-ended"):
        RunLog.open(run_dir, live())


def test_an_appended_image_has_the_maps_it_has_alone(tmp_path, pictures):
    with RunLog.open(tmp_path / "served", live()) as log:
        for i in range(3):
            log.append([Item(pictures[i], id=f"r{i}")])
    logged = xai_core.open_run(tmp_path / "served")
    alone = xai_core.explain(colour_net(), [pictures[2]], ids=["r2"], classes=CLASSES, activation="sigmoid", top_k=1,
                             explainers=EXPLAINERS, metrics=[{"type": "deletion_auc", "params": {"steps": 4}}],
                             out=tmp_path / "alone", progress=False)
    for _, row in alone.labels.iterrows():
        for e in alone.explainers:
            np.testing.assert_array_equal(logged.map("r2", row.label, e), alone.map("r2", row.label, e))
    assert logged.scores[logged.scores.sample_id == "r2"]["score"].tolist() == alone.scores["score"].tolist()
