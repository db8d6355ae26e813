"""A real 1-channel problem for the tests: scikit-learn's bundled handwritten digits (8×8, from
UCI, no download), "0" versus "1", upscaled to 16×16 grey PNGs with the digit's bounding box,
and a small grey CNN trained on 120 of them deterministically in seconds (30 full-batch Adam
steps; 96 % accuracy on all 360)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

CLASSES = ["0", "1"]
SIZE = 16


class GreyNet(nn.Module):
    """(N, 1, 16, 16) normalised grey → (N, 2) logits (softmax, single-label)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def grey_net() -> nn.Module:
    return GreyNet().eval()


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) uint8 images of the digits 0 and 1, and their (N,) labels."""
    from sklearn.datasets import load_digits

    d = load_digits(n_class=2)
    small = (d.images / 16.0 * 255).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR)) for im in small])
    return big, d.target.astype(np.int64)


def make_grey_dataset(root: Path, n_test: int = 6) -> tuple[Path, Path]:
    """Writes the last ``n_test`` digits as a manifest (grey PNGs, boxes) and trains GreyNet on
    the first 120. Returns (manifest path, weights path)."""
    images, labels = digit_images()
    (root / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(len(images) - n_test, len(images)):
        ys, xs = np.nonzero(images[i] > 32)
        sid = f"d{i:03d}"
        Image.fromarray(images[i], mode="L").save(root / "images" / f"{sid}.png")
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        lines.append({"id": sid, "image": f"images/{sid}.png", "labels": [CLASSES[labels[i]]],
                      "boxes": [{"label": CLASSES[labels[i]], "box": box}]})
    (root / "classes.json").write_text(json.dumps(CLASSES))
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(l) + "\n" for l in lines))

    torch.manual_seed(0)
    net = GreyNet()
    x = torch.from_numpy(images[:120]).float().div(255.0).unsqueeze(1)  # 120 training digits: enough
    x = (x - 0.5) / 0.5
    y = torch.from_numpy(labels[:120])
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    weights = root / "grey_net.pt"
    torch.save(net.state_dict(), weights)
    return manifest, weights


def grey_config(manifest: Path, weights: Path, out: Path, **over) -> dict:
    cfg = {
        "model": {"factory": "grey:grey_net", "weights": str(weights), "activation": "softmax",
                  "input_size": SIZE, "mean": [0.5], "std": [0.5]},
        "dataset": {"kind": "manifest", "path": str(manifest)},
        "explainers": ["gradient", "gradcam", "deeplift", "guided_backprop",
                       {"type": "integrated_gradients", "params": {"steps": 8}},
                       {"type": "occlusion", "params": {"window": 4, "stride": 4}},
                       {"type": "lime", "params": {"samples": 16, "segments": 6}}, "random"],
        "metrics": [{"type": "deletion_auc", "params": {"steps": 8}}, "pointing_game", "iosr"],
        "batch_size": 4,
        "seed": 0,
        "out": str(out),
    }
    cfg.update(over)
    return cfg
