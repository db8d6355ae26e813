"""The PyTorch Lightning callback: a real three-epoch ``Trainer.fit`` of a small CNN (CPU, a
few dozen 16-px images) logs one step per epoch; fast_dev_run works; a resumed fit duplicates
no step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

# pytorch_lightning (through torchmetrics) and transformers' image classes import torchvision, which
# needs the operator schemas of tests/timm_import.py beside torch's CPU build (spawned DDP workers too).
import timm_import  # noqa: E402,F401

pl = pytest.importorskip("pytorch_lightning")

import xai_core  # noqa: E402
from xai_core.errors import ConfigError  # noqa: E402
from xai_core.integrations.lightning import ExplainCallback  # noqa: E402
from xai_core.summary import RunReader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps_fixtures import CLASSES, TinyCNN, squares, tensors  # noqa: E402


class Module(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = TinyCNN()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def loader(n=32):
    x, y = tensors(*squares(n))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def trainer(root, **kw):
    kw = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
          "enable_model_summary": False, "default_root_dir": str(root), **kw}
    return pl.Trainer(**kw)


@pytest.fixture(scope="module")
def probe():
    images, labels = squares(6, seed=1)
    return images, labels.tolist()


def test_three_epochs_three_steps_then_resume(tmp_path, probe):
    torch.manual_seed(0)
    images, labels = probe
    out = tmp_path / "run"
    cb = ExplainCallback(images, labels=labels, classes=CLASSES, out=out, every_n_epochs=1)
    keep = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    t = trainer(tmp_path, max_epochs=3, callbacks=[cb, keep])
    t.fit(Module(), loader())
    assert cb.logged == [0, 1, 2]
    run = xai_core.open_run(out)
    assert run.steps == [0, 1, 2] and sorted(set(run.scores["step"])) == [0, 1, 2]
    assert len(run.samples) == 18 and RunReader(out).verify()["steps"] == 3
    # resumed from the first epoch's checkpoint for three more epochs: epochs 1 and 2 are in
    # the run already (skipped, not duplicated), epoch 3 is new
    ckpt = next((tmp_path / "ckpt").glob("epoch=0-*.ckpt"))
    cb2 = ExplainCallback(images, labels=labels, classes=CLASSES, out=out, every_n_epochs=1)
    trainer(tmp_path, max_epochs=4, enable_checkpointing=False, callbacks=[cb2]).fit(Module(), loader(),
                                                                                     ckpt_path=str(ckpt))
    assert cb2.logged == [3] and xai_core.open_run(out).steps == [0, 1, 2, 3]
    assert len(xai_core.open_run(out).samples) == 24


def test_fast_dev_run_and_every_n_steps(tmp_path, probe):
    images, labels = probe
    cb = ExplainCallback(images, labels=labels, classes=CLASSES, out=tmp_path / "fast", every_n_steps=2,
                         model=lambda m: m.net, explainers=["gradient"], metrics=["sparseness"])
    trainer(tmp_path, fast_dev_run=3, callbacks=[cb]).fit(Module(), loader())
    assert cb.logged == [2]
    assert xai_core.open_run(tmp_path / "fast").steps == [2]


def test_bad_frequency_is_one_line(probe):
    with pytest.raises(ConfigError, match="every_n_epochs is 0; expected an integer ≥ 1"):
        ExplainCallback(probe[0], classes=CLASSES, every_n_epochs=0)


@pytest.mark.slow  # two spawned processes: about 40 s on the shared 2-core machine
def test_ddp_rank_zero_writes_alone(tmp_path, probe):
    """Two CPU processes (DDP over gloo): one step per epoch, written by rank zero only."""
    out = tmp_path / "ddp"
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("ddp_fit.py")), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = xai_core.open_run(out)
    assert run.steps == [0, 1] and len(run.samples) == 12
    assert not (out / ".lock").exists() and RunReader(out).verify()["steps"] == 2
