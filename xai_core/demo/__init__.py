"""Bundled demo: a synthetic "digits on textures" multi-label dataset and a small CNN.

Shared constants live here so that the dataset, the model, the trainer and the
dashboard agree on them without importing torch needlessly.

Model input convention: float32 tensor of shape (N, 3, IMAGE_SIZE, IMAGE_SIZE),
RGB, normalised per channel as ``(pixel / 255 - MEAN) / STD``.
"""

from pathlib import Path

#: Label names, index i <-> class "i". Multi-label: an image holds a *set* of them.
CLASSES = [str(i) for i in range(10)]

#: Side of the square demo images, in pixels.
IMAGE_SIZE = 64

#: Per-channel RGB mean/std of the demo training images (pixel / 255), measured on
#: ``generate_demo_dataset(seed=0)``'s train split and rounded.
MEAN = (0.269, 0.239, 0.229)
STD = (0.148, 0.139, 0.141)

#: Committed weights of the demo model (state_dict of ``DemoCNN``).
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "demo_cnn.pt"

#: Metrics of the committed weights on the demo test split (written by train.py).
METRICS_PATH = WEIGHTS_PATH.parent / "metrics.json"

__all__ = ["CLASSES", "IMAGE_SIZE", "MEAN", "STD", "WEIGHTS_PATH", "METRICS_PATH"]
