"""xai_core.Monitor: a plain training loop logs one step per epoch into one run of steps."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import xai_core
from xai_core.errors import ConfigError, SummaryError
from xai_core.summary import RunReader

from steps_fixtures import CLASSES, TinyCNN, squares, tensors, train_epoch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three epochs of a plain loop, a Monitor step after each; (run dir, model, optimiser, monitor)."""
    torch.manual_seed(0)
    images, labels = squares(24)
    x, y = tensors(images, labels)
    model = TinyCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = tmp_path_factory.mktemp("mon") / "run"
    mon = xai_core.Monitor(images[:6], labels=labels[:6].tolist(), classes=CLASSES, out=out)
    for epoch in range(3):
        train_epoch(model, opt, x, y)
        assert mon.log(model, step=epoch) is True
    return out, model, opt, mon


def test_one_step_per_epoch(trained):
    out, _, _, mon = trained
    run = xai_core.open_run(out)
    assert run.steps == mon.steps == [0, 1, 2]
    for frame in (run.samples, run.labels, run.scores):
        assert frame["step"].tolist().count(0) == len(frame) // 3
        assert sorted(set(frame["step"])) == [0, 1, 2]
    assert len(run.samples) == 18
    assert set(run.scores["explainer"]) == {"gradient", "gradcam"}
    assert set(run.scores["metric"]) == {"sparseness", "complexity", "deletion_auc"}
    # the maps of two steps differ (the model changed), each (16, 16)
    sid = run.samples["sample_id"][0]
    m0, m2 = run.map(sid, step=0), run.map(sid, step=2)
    assert m0.shape == (16, 16) and not np.allclose(m0, m2)
    np.testing.assert_array_equal(run.map(sid), m2)  # default: the newest step
    info = RunReader(out).verify()
    assert info["steps"] == 3 and info["parts"] == 3


def test_model_and_process_given_back(trained):
    out, model, opt, mon = trained
    model.train()
    model.head.weight.grad = torch.ones_like(model.head.weight)
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    want = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    state = {k: v.clone() for k, v in opt.state_dict()["state"].items()} if opt.state_dict()["state"] else {}
    assert mon.log(model, step=5)
    assert model.training and all(m.training for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == want
    assert opt.state_dict()["state"].keys() == state.keys()
    assert xai_core.open_run(out).steps == [0, 1, 2, 5]


def test_grad_state_restored(trained):
    out, model, _, mon = trained
    with torch.no_grad():
        mon.log(model, step=6)
        assert not torch.is_grad_enabled()
    mon.log(model, step=7)
    assert torch.is_grad_enabled()


def test_existing_step_is_skipped_and_bad_step_refused(trained):
    out, model, _, mon = trained
    assert mon.log(model, step=1) is False
    with pytest.raises(ConfigError, match="expected an integer ≥ 0"):
        mon.log(model, step=-1)
    with pytest.raises(SummaryError, match="no step 4; the run holds steps"):
        xai_core.open_run(out).map(xai_core.open_run(out).samples["sample_id"][0], step=4)


def test_reopened_by_another_monitor_of_other_images(trained, tmp_path):
    out, model, _, _ = trained
    images, labels = squares(4, seed=3)
    other = xai_core.Monitor(images, labels=labels.tolist(), classes=CLASSES, out=out)
    with pytest.raises(ConfigError, match="probe images differ"):
        other.log(model, step=9)
    # the same probe set continues the run
    images, labels = squares(24)
    same = xai_core.Monitor(images[:6], labels=labels[:6].tolist(), classes=CLASSES, out=out)
    assert same.steps[:3] == [0, 1, 2] and same.log(model, step=1) is False
