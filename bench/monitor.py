"""Cost of one ``xai_core.Monitor.log`` call against one training step (issue 26, item 6).

    python bench/monitor.py      # BENCH_MONITOR_PROBE=8 probe images, BENCH_MONITOR_BATCH=32 per step

For the demo CNN (64 × 64, multi-label, sigmoid, its trained weights) and a small Hugging Face ViT (random weights from
a config: 64 × 64, patch 8, 4 layers of width 128), prints the median wall and CPU seconds of one training
step (forward, backward and an Adam step on a batch of random images), of one ``log`` call with
the cheap defaults (gradient and Grad-CAM; sparseness, complexity and an 8-step deletion curve)
on the probe images, and their ratio: how many training steps one logged step costs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (puts the repository on sys.path)
import numpy as np
import torch
from _report import env_int, figure, load_line

import xai_core

PROBE = env_int("BENCH_MONITOR_PROBE", 8)
BATCH = env_int("BENCH_MONITOR_BATCH", 32)
REPEATS = env_int("BENCH_MONITOR_REPEATS", 5)


def _median_s(fn, repeats: int = REPEATS) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds of this process) of ``fn()``: on a shared machine the
    CPU seconds' ratio is the steadier figure (the wall clock counts other users' load too)."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bench(name: str, model: torch.nn.Module, loss_fn, classes: list[str], **monitor) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = torch.rand(BATCH, 3, 64, 64)
    y = torch.randint(0, len(classes), (BATCH,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        model.train()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    images = rng.integers(0, 256, (PROBE, 64, 64, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        mon = xai_core.Monitor(images, labels=[int(v) for v in rng.integers(0, len(classes), PROBE)],
                               classes=classes, out=Path(tmp) / "run", **monitor)
        step = iter(range(10_000))
        log_s = _median_s(lambda: mon.log(model, step=next(step)))
        maps = len(mon.last.result["labels"]["label"])
    train_s = _median_s(train_step)
    print(f"{name}:")
    figure("training step", train_s[0], f"s wall, {train_s[1]:.3g} s CPU (batch {BATCH})")
    figure("log call", log_s[0], f"s wall, {log_s[1]:.3g} s CPU ({PROBE} probe images, {maps} labels explained)")
    figure("log / training step", log_s[0] / train_s[0], f"× wall, {log_s[1] / train_s[1]:.3g} × CPU")


def main() -> None:
    print(f"Monitor.log against a training step · {load_line()} · torch threads {torch.get_num_threads()}")
    from xai_core.demo import CLASSES, MEAN, STD
    from xai_core.demo.model import load_demo_model

    multi = torch.nn.BCEWithLogitsLoss()
    # The trained weights: an untrained sigmoid net calls half the classes predicted, so each image
    # would have ~10 labels to explain instead of the 1–3 of a model partway through its training.
    bench("demo CNN (trained weights)", load_demo_model().train(), lambda out, y: multi(out, torch.nn.functional.one_hot(y, len(CLASSES)).float()),
          list(CLASSES), activation="sigmoid", mean=list(MEAN), std=list(STD))
    try:
        import transformers
    except ImportError:
        print("small ViT: skipped (pip install -e .[hf])")
        return
    cfg = transformers.ViTConfig(image_size=64, patch_size=8, num_channels=3, hidden_size=128, num_hidden_layers=4,
                                 num_attention_heads=4, intermediate_size=256, num_labels=10)
    vit = transformers.ViTForImageClassification(cfg)
    bench("small ViT (HF, 64 px, 4 × 128)", vit, lambda out, y: torch.nn.functional.cross_entropy(out.logits, y),
          [str(i) for i in range(10)], output="logits", mean=0.5, std=0.5)


if __name__ == "__main__":
    main()
