"""The demo CNN: a small multi-label digit detector for 64x64 RGB images.

Layout (input (N, 3, 64, 64) float32, normalised with ``MEAN``/``STD``)::

    stem    conv5x5/2(3->24) BN ReLU             -> (N, 24, 32, 32)
    block2  conv3x3(24->48)  BN ReLU  MaxPool2   -> (N, 48, 16, 16)
    block3  conv3x3(48->64)  BN ReLU             -> (N, 64, 16, 16)
    block4  conv3x3(64->64)  BN ReLU             -> (N, 64, 16, 16)
    block5  conv3x3(64->96)  BN ReLU             -> (N, 96, 16, 16)    <- Grad-CAM layer
    global average pool, Linear(96->10)           -> (N, 10) raw logits

134k parameters, ~0.8 ms per image forward on two CPU cores at batch 64. Every explainer and
metric pays that cost hundreds of times per image, so the widths are the smallest that keep
both the test scores (mAP 0.986) and Integrated Gradients' completeness (mean error 0.6 % at
50 steps): at (16, 32, 48, 48, 64) the scores hold but IG's mean error reaches 1 %; at
(32, 64, 96, 96, 128) a pass costs 2.5 times as much for 0.5 %. The last conv map stays at
16x16 (4 px per cell) so that Grad-CAM maps are sharp enough to point at a ~20 px digit; the
receptive field there is 35 px, enough to see a whole digit. The strided stem avoids
full-resolution (64x64) activations, which dominated CPU training time. Apply
``torch.sigmoid`` to the logits for per-class probabilities (multi-label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from xai_core.demo import CLASSES, MEAN, STD, WEIGHTS_PATH


def _block(c_in: int, c_out: int, *, pool: bool = False, stride: int = 1,
           kernel: int = 3) -> nn.Sequential:
    """conv + BatchNorm + ReLU (+ 2x2 max-pool); "same" padding, so only the stride
    and the pool shrink the map."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=False),  # not in-place: hooks of explainers see clean tensors
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class DemoCNN(nn.Module):
    """Small conv net: (N, 3, 64, 64) float32 -> (N, num_classes) float32 logits.

    ``features`` holds the conv blocks; ``features[-1][0]`` (``last_conv``) is
    the last conv layer, a natural Grad-CAM target (output (N, 96, 16, 16)).
    """

    def __init__(self, num_classes: int = len(CLASSES),
                 widths: tuple[int, ...] = (24, 48, 64, 64, 96)) -> None:
        super().__init__()
        # 64 -> 32 by the strided stem, 32 -> 16 by the pool of block 2, then 16x16.
        blocks = [_block(3, widths[0], stride=2, kernel=5), _block(widths[0], widths[1], pool=True)]
        blocks += [_block(a, b) for a, b in zip(widths[1:-1], widths[2:])]
        c_in = widths[-1]
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.head = nn.Linear(c_in, num_classes)

    @property
    def last_conv(self) -> nn.Conv2d:
        """The last ``nn.Conv2d`` (Grad-CAM target layer)."""
        return self.features[-1][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) float32 normalised -> (N, num_classes) raw logits."""
        return self.head(self.flatten(self.pool(self.features(x))))


def preprocess(images) -> torch.Tensor:
    """RGB uint8 images (H, W, 3) or (N, H, W, 3) -> normalised float32 (N, 3, H, W)."""
    arr = np.array(images)  # a writable copy: PIL-backed arrays are read-only
    if arr.ndim == 3:
        arr = arr[None]
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def load_demo_model(weights_path: str | Path | None = None) -> nn.Module:
    """Build ``DemoCNN``, load the committed weights, return it in eval mode (CPU)."""
    path = Path(weights_path) if weights_path is not None else WEIGHTS_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"demo model weights not found at {path}; "
            "train them with `python -m xai_core.demo.train`"
        )
    model = DemoCNN()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
