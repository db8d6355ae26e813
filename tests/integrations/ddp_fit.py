"""``python ddp_fit.py OUT``: two epochs of DDP (``ddp_spawn``, two CPU processes over gloo) with
the Lightning callback. A script, not a test function: spawned workers re-run this module's
imports (as ``__mp_main__``) before they unpickle the Trainer's objects, so the torchvision
schemas of ``tests/timm_import.py`` are defined in them too (pytorch_lightning imports
torchmetrics, which imports torchvision)."""

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import timm_import  # noqa: E402,F401

import test_lightning as tl  # noqa: E402
from xai_core.integrations.lightning import ExplainCallback  # noqa: E402

if __name__ == "__main__":
    images, labels = tl.squares(6, seed=1)
    cb = ExplainCallback(images, labels=labels.tolist(), classes=tl.CLASSES, out=Path(sys.argv[1]),
                         explainers=["gradient"], metrics=["sparseness"])
    tl.trainer(Path(sys.argv[1]).parent, max_epochs=2, devices=2, strategy="ddp_spawn", enable_checkpointing=False,
               callbacks=[cb]).fit(tl.Module(), tl.loader(16))
