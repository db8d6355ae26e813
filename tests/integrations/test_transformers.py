"""The Hugging Face Trainer callback: a real short ``Trainer.train`` of a tiny
``ViTForImageClassification`` (random weights from a small config, nothing downloaded) logs
one step per epoch, and one per evaluation with ``on="evaluate"``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# pytorch_lightning (through torchmetrics) and transformers' image classes import torchvision, which
# needs the operator schemas of tests/timm_import.py beside torch's CPU build (spawned DDP workers too).
import timm_import  # noqa: E402,F401

transformers = pytest.importorskip("transformers")

import xai_core  # noqa: E402
from xai_core.errors import ConfigError  # noqa: E402
from xai_core.integrations.transformers import ExplainCallback  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps_fixtures import CLASSES, squares, tensors  # noqa: E402


class Squares(torch.utils.data.Dataset):
    def __init__(self, n=16):
        self.x, self.y = tensors(*squares(n))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def tiny_vit():
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, num_labels=len(CLASSES))
    return transformers.ViTForImageClassification(cfg)


def args(tmp_path, **kw):
    return transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), num_train_epochs=2,
                                          per_device_train_batch_size=8, per_device_eval_batch_size=8,
                                          learning_rate=1e-3, report_to="none", save_strategy="no", use_cpu=True,
                                          disable_tqdm=True, logging_strategy="no", **kw)


def test_vit_trainer_one_step_per_epoch(tmp_path):
    images, labels = squares(4, seed=2)
    out = tmp_path / "run"
    cb = ExplainCallback(images, labels=labels.tolist(), classes=CLASSES, out=out, on="epoch",
                         explainers=["gradient"], mean=0.5, std=0.5)
    model = tiny_vit()
    transformers.Trainer(model=model, args=args(tmp_path), train_dataset=Squares(), callbacks=[cb]).train()
    assert cb.logged == [0, 1]
    run = xai_core.open_run(out)
    assert run.steps == [0, 1] and len(run.samples) == 8 and set(run.scores["step"]) == {0, 1}
    assert run.map(run.samples["sample_id"][0], step=0).shape == (16, 16)
    assert model.training  # handed back to the trainer as it was


def test_vit_trainer_on_evaluate(tmp_path):
    images, labels = squares(4, seed=2)
    out = tmp_path / "run"
    cb = ExplainCallback(images, labels=labels.tolist(), classes=CLASSES, out=out, on="evaluate",
                         explainers=["gradient"], metrics=["sparseness"], mean=0.5, std=0.5)
    transformers.Trainer(model=tiny_vit(), args=args(tmp_path, eval_strategy="epoch"), train_dataset=Squares(),
                         eval_dataset=Squares(8), callbacks=[cb]).train()
    assert cb.logged == [2, 4]  # global steps: two batches per epoch
    assert xai_core.open_run(out).steps == [2, 4]


def test_bad_event_is_one_line():
    with pytest.raises(ConfigError, match="on is 'step'; expected 'epoch' or 'evaluate'"):
        ExplainCallback(squares(2)[0], classes=CLASSES, on="step")
