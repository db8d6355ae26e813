"""The dashboard over steps under AppTest: the "Scores over steps" page, the saliency grid's
step slider and its colour scale across steps, on a run written by xai_core.Monitor."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import dash_runs
from apptest_util import open_page, tiles

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps_fixtures import CLASSES, TinyCNN, squares, tensors, train_epoch  # noqa: E402


@pytest.fixture(scope="module")
def steps_logdir(tmp_path_factory) -> Path:
    import torch

    import xai_core

    torch.manual_seed(0)
    logdir = tmp_path_factory.mktemp("steps_logdir")
    images, labels = squares(24)
    x, y = tensors(images, labels)
    model, mon = TinyCNN(), xai_core.Monitor(images[:4], labels=labels[:4].tolist(), classes=CLASSES,
                                             out=logdir / "training")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(3):
        train_epoch(model, opt, x, y)
        mon.log(model, step=epoch)
    return logdir


def test_scores_over_steps_page(monkeypatch, steps_logdir):
    at = open_page(monkeypatch, steps_logdir, "pages/steps.py", run="training")
    assert at.title[0].value == "Scores over steps"
    assert "steps 0, 1, 2" in at.caption[0].value
    assert len(at.get("plotly_chart")) == 1
    moved = at.dataframe[1].value
    assert len(moved) == 4 and list(moved["distance"]) == sorted(moved["distance"], reverse=True)
    assert moved["distance"].between(0, 1).all()
    shown = [c for img in at.image for c in img.captions]
    assert len(shown) == 12 and shown[0].startswith(f"{moved['sample_id'].iat[0]} · ")  # the most changed first
    assert shown[1:3] == ["gradient · step 0", "gradient · step 2"]
    at.selectbox(key="steps_a").set_value(2).run()  # the same step: nothing changed
    assert not at.exception
    assert (at.dataframe[1].value["distance"] == 0).all()
    assert len(at.dataframe[2].value) == 0


def test_saliency_step_slider_and_scale_across_steps(monkeypatch, steps_logdir):
    at = open_page(monkeypatch, steps_logdir, "pages/saliency.py", run="training")
    slider = at.select_slider(key="sal_step")
    assert slider.value == 2 and list(slider.options) == ["0", "1", "2"]
    newest = tiles(at)
    slider.set_value(0).run()
    assert not at.exception
    first = tiles(at)
    assert len(first) == len(newest) and first != newest  # other maps at step 0
    at.toggle(key="sal_scale_steps").set_value(True).run()
    assert not at.exception and tiles(at) != first  # the same maps on the scale of every step
    at.button(key=[b.key for b in at.button if b.key and b.key.startswith("sal_det_")][0]).click().run()
    assert not at.exception  # the detail view opens at step 0


def test_one_step_run_says_so(monkeypatch, dash_logdir):
    at = open_page(monkeypatch, dash_logdir, "pages/steps.py", run=dash_runs.SYNTH_RUN)
    assert not at.exception
    assert any("holds one step" in i.value for i in at.info)


def test_compare_two_steps_of_one_run(monkeypatch, steps_logdir):
    at = open_page(monkeypatch, steps_logdir, "pages/compare.py", run="training")
    assert at.selectbox(key="vs_run").value == "training"  # the only run: its own steps compare
    at.select_slider(key="vs_a_step").set_value(0).run()
    assert not at.exception
    assert at.select_slider(key="vs_b_step").value == 2
    text = " ".join(c.value for c in at.caption)
    assert "4 common samples" in text and re.search(r"[1-9]\d* with another tag", text)  # steps 0 and 2 differ


def test_newest_step_shown_while_it_trains(monkeypatch, tmp_path):
    import torch

    import xai_core

    images, labels = squares(4)
    mon = xai_core.Monitor(images, labels=labels.tolist(), classes=CLASSES, out=tmp_path / "live",
                           explainers=["gradient"], metrics=["sparseness"])
    model = TinyCNN()
    for step in (0, 1):
        mon.log(model, step=step)
    at = open_page(monkeypatch, tmp_path, "pages/saliency.py", run="live")
    assert at.select_slider(key="sal_step").value == 1
    with torch.no_grad():
        model.head.bias.add_(1.0)
    mon.log(model, step=2)  # the training goes on while the page is open
    at.run()  # what the page's refresh fragment triggers when the run's manifest changes
    assert not at.exception
    assert at.select_slider(key="sal_step").value == 2 and list(at.select_slider(key="sal_step").options)[-1] == "2"
    at.select_slider(key="sal_step").set_value(0).run()
    mon.log(model, step=3)
    at.run()  # a step chosen by hand stays chosen
    assert at.select_slider(key="sal_step").value == 0
