"""Small hand-built fixtures for the tests: a dataset of coloured squares and a model that
detects them exactly, so that the right explanation is known in advance."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

CLASSES = ["red", "green", "blue"]
SIZE = 32


class ColourNet(nn.Module):
    """Logit of class c = 8 · (max over pixels of ReLU(channel c − mean of the others − 0.3)) − 2.

    A square of pure colour c lights up exactly its own pixels, so gradients and CAMs must
    point at the square. Input: (N, 3, H, W) float32 in [0, 1] (identity normalisation).
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())
        with torch.no_grad():
            w = torch.full((3, 3), -0.5)
            w.fill_diagonal_(1.0)
            self.features[0].weight.copy_(w.view(3, 3, 1, 1))
            self.features[0].bias.fill_(-0.3)
        self.pool = nn.AdaptiveMaxPool2d(1)

    def forward(self, x):
        return 8.0 * self.pool(self.features(x)).flatten(1) - 2.0


def colour_net() -> nn.Module:
    return ColourNet().eval()


def make_dataset(root: Path, n: int = 12, seed: int = 0, size: int = SIZE) -> Path:
    """Images with 0–2 coloured squares on grey noise; manifest.jsonl with boxes and masks."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        img = (rng.uniform(0.35, 0.45, (size, size, 1)) * 255).repeat(3, axis=2)
        mask = np.zeros((size, size), np.uint8)
        k = i % 3  # 0, 1 or 2 squares, so every image count occurs
        classes = rng.choice(3, size=k, replace=False)
        boxes = []
        for j, c in enumerate(classes):
            s = size // 4
            x0 = int(rng.integers(0, size // 2 - s)) + (size // 2) * j
            y0 = int(rng.integers(0, size - s))
            img[y0:y0 + s, x0:x0 + s] = 0
            img[y0:y0 + s, x0:x0 + s, c] = 255
            mask[y0:y0 + s, x0:x0 + s] = c + 1
            boxes.append({"label": CLASSES[c], "box": [x0, y0, x0 + s, y0 + s]})
        sid = f"s{i:03d}"
        Image.fromarray(img.astype(np.uint8)).save(root / "images" / f"{sid}.png")
        Image.fromarray(mask).save(root / "masks" / f"{sid}.png")
        lines.append({"id": sid, "image": f"images/{sid}.png", "labels": [CLASSES[c] for c in classes],
                      "boxes": boxes, "mask": f"masks/{sid}.png"})
    (root / "classes.json").write_text(json.dumps(CLASSES))
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(l) + "\n" for l in lines))
    return path


def toy_config(data: Path, out: Path, **over) -> dict:
    cfg = {
        "model": {"factory": "toy:colour_net", "activation": "sigmoid", "input_size": [SIZE, SIZE],
                  "mean": [0, 0, 0], "std": [1, 1, 1]},
        "dataset": {"kind": "manifest", "path": str(data)},
        "explainers": ["gradient", "gradcam", {"type": "integrated_gradients", "params": {"steps": 16}}, "random"],
        "metrics": ["deletion_auc", "insertion_auc", "pointing_game", "iosr"],
        "labels": {"threshold": 0.5, "top_k": 2},
        "batch_size": 4,
        "seed": 0,
        "out": str(out),
    }
    cfg.update(over)
    return cfg


class SlowColourNet(ColourNet):
    """ColourNet that sleeps on every forward call, so a run lasts long enough to be killed
    in the middle (the resume, lock and Ctrl-C tests). The sleep is a forward pre-hook: an
    ONNX export would drop a sleep in ``forward``, while a hooked model stays on torch under
    ``model.fast_forward`` (xai_core/models/fast.py), so the run stays slow.

    ``hold_after`` (a folder) and ``hold`` (a file): once the folder holds a committed part
    (``part-*.parquet``), every forward call waits while ``hold`` exists (up to 120 s) for the
    signal a test sends, so on a loaded machine the run cannot finish between the test seeing
    the first part and its signal; the test removes ``hold`` before it resumes the run."""

    def __init__(self, delay: float = 0.02, hold_after: str | None = None, hold: str | None = None):
        super().__init__()
        held, flag = (Path(hold_after), Path(hold)) if hold_after and hold else (None, None)

        def slow(module, args):
            time.sleep(delay)
            if held is not None and any(held.glob("part-*.parquet")):
                for _ in range(2400):
                    if not flag.exists():
                        break
                    time.sleep(0.05)

        self.register_forward_pre_hook(slow)


def slow_colour_net(delay: float = 0.02, hold_after: str | None = None, hold: str | None = None) -> nn.Module:
    return SlowColourNet(delay, hold_after, hold).eval()


class ContrastNet(ColourNet):
    """ColourNet whose logit of class c also falls with the other colours' evidence:
    logit_c = 8 · (m_c − 0.5 · Σ_{o≠c} m_o) − 2, m = max-pooled features. Explanations of c
    are then negative on the squares of the other colours (signed maps on demand)."""

    def forward(self, x):
        m = self.pool(self.features(x)).flatten(1)
        return 8.0 * (1.5 * m - 0.5 * m.sum(dim=1, keepdim=True)) - 2.0


def contrast_net() -> nn.Module:
    return ContrastNet().eval()


class BranchyColourNet(ColourNet):
    """ColourNet with data-dependent Python control flow: tracing (hence an ONNX export)
    records only the branch its example input takes, so the export is not exact."""

    def forward(self, x):
        out = super().forward(x)
        return out if float(x.detach().mean()) > 0.2 else out + 1.0


def branchy_colour_net() -> nn.Module:
    return BranchyColourNet().eval()


class CummaxColourNet(ColourNet):
    """ColourNet through an operator the ONNX exporter does not support (aten::cummax)."""

    def forward(self, x):
        return super().forward(torch.cummax(x, dim=3).values)


def cummax_colour_net() -> nn.Module:
    return CummaxColourNet().eval()


class _BackwardMemory(torch.autograd.Function):
    """Identity whose backward runs out of "device memory" above ``limit`` images."""

    @staticmethod
    def forward(ctx, x, limit):
        ctx.limit = limit
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        if g.shape[0] > ctx.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated): a backward pass of {g.shape[0]} "
                                              f"images; {ctx.limit} fit")
        return g, None


class OomColourNet(ColourNet):
    """ColourNet that runs out of memory the way a GPU does, on the CPU: its forward raises
    ``torch.cuda.OutOfMemoryError`` (the class exists in CPU builds) above ``forward_limit``
    images, and the backward pass of a gradient pass above ``backward_limit``. ``sizes`` logs
    the batch sizes of the forward passes that ran."""

    def __init__(self, forward_limit: int = 6, backward_limit: int = 1 << 30):
        super().__init__()
        self.forward_limit, self.backward_limit = forward_limit, backward_limit
        self.sizes: list[int] = []

    def forward(self, x):
        if x.shape[0] > self.forward_limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated): a forward pass of {x.shape[0]} "
                                              f"images; {self.forward_limit} fit")
        self.sizes.append(int(x.shape[0]))
        out = super().forward(x)
        if torch.is_grad_enabled() and out.requires_grad:  # every backward pass starts here
            out = _BackwardMemory.apply(out, self.backward_limit)
        return out


def oom_colour_net(forward_limit: int = 6, backward_limit: int = 1 << 30) -> nn.Module:
    return OomColourNet(forward_limit, backward_limit).eval()


class StandardisingColourNet(ColourNet):
    """ColourNet behind a per-image standardisation factor s / s (s: the image's standard
    deviation), which is 1 on every real image and 0 / 0 = NaN on a constant one — what a
    deletion curve's last step (every pixel filled with 0) is. Its predictions on the dataset
    are finite; some passes inside the metrics are not."""

    def forward(self, x):
        s = x.std(dim=(1, 2, 3), keepdim=True).flatten(1)
        return super().forward(x) * (s / s)


def standardising_colour_net() -> nn.Module:
    return StandardisingColourNet().eval()


class InfColourNet(ColourNet):
    """ColourNet whose logits are +inf where ColourNet's are positive: probabilities of
    exactly 1 and 0, which look finite."""

    def forward(self, x):
        out = super().forward(x)
        return torch.where(out > 0, torch.full_like(out, float("inf")), out)


def inf_colour_net() -> nn.Module:
    return InfColourNet().eval()


def marking_colour_net(marker: str) -> nn.Module:
    """colour_net, after creating the file ``marker``: shows whether (and when) a run set its
    model up."""
    Path(marker).write_text("the model was set up")
    return colour_net()


class BatchOfOneColourNet(ColourNet):
    """ColourNet whose forward refuses batches of more than ``most`` images, or exactly ``only``."""

    def __init__(self, most: int = 0, only: int = 0):
        super().__init__()
        self.most, self.only = most, only

    def forward(self, x):
        if (self.most and x.shape[0] > self.most) or x.shape[0] == self.only:
            raise ValueError(f"this network takes no batch of {x.shape[0]} images")
        return super().forward(x)


def picky_colour_net(most: int = 0, only: int = 0) -> nn.Module:
    return BatchOfOneColourNet(most, only).eval()
