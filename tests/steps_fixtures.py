"""A tiny trainable CNN and probe images for the tests of runs of steps (Monitor, callbacks,
the dashboard over steps): a few dozen 16-px images of coloured squares, trained on the CPU in
a fraction of a second per epoch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

CLASSES = ["red", "green", "blue"]
SIZE = 16


class TinyCNN(nn.Module):
    """conv(3→8) → ReLU → conv(8→8) → ReLU → global mean → linear(8→3); (N, 3, 16, 16) → (N, 3)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU())
        self.head = nn.Linear(8, len(CLASSES))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def squares(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """((n, 16, 16, 3) uint8 images, (n,) int labels): a square of the label's colour on grey."""
    rng = np.random.default_rng(seed)
    images = np.full((n, SIZE, SIZE, 3), 90, np.uint8)
    labels = np.arange(n) % len(CLASSES)
    for i, c in enumerate(labels):
        y, x = rng.integers(0, SIZE - 6, 2)
        images[i, y:y + 6, x:x + 6] = 0
        images[i, y:y + 6, x:x + 6, c] = 255
    return images, labels


def tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0, torch.from_numpy(labels).long()


def train_epoch(model: nn.Module, opt, x: torch.Tensor, y: torch.Tensor, batch: int = 8) -> float:
    model.train()
    total = 0.0
    for i in range(0, len(x), batch):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + batch]), y[i:i + batch])
        loss.backward()
        opt.step()
        total += loss.item()
    return total


def monitor_run(out, *, epochs: int = 3, probe: int = 4, **monitor):
    """A run of ``epochs`` steps written by xai_core.Monitor in a plain training loop of TinyCNN."""
    import xai_core

    torch.manual_seed(0)
    images, labels = squares(24)
    x, y = tensors(images, labels)
    model = TinyCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    mon = xai_core.Monitor(images[:probe], labels=labels[:probe].tolist(), classes=CLASSES, out=out, **monitor)
    for epoch in range(epochs):
        train_epoch(model, opt, x, y)
        mon.log(model, step=epoch)
    return out
