"""Train the demo CNN on the demo dataset (CPU, ~2-3 minutes on 2 cores).

    python -m xai_core.demo.train [--data DIR] [--out PATH] [--epochs N] [--seed S]

Generates the dataset into ``data/demo`` first if it is missing, trains with
BCE-with-logits + Adam (cosine learning rate, light augmentation), saves the
``state_dict`` and writes test-split metrics next to it as ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import average_precision_score, f1_score
from torch import nn

from xai_core.demo import CLASSES, MEAN, STD, WEIGHTS_PATH
from xai_core.demo.dataset import ensure_demo_dataset
from xai_core.demo.model import DemoCNN, preprocess

DEFAULT_DATA_DIR = Path("data/demo")


def load_split(data_dir, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of the demo dataset.

    Returns (images uint8 (N, H, W, 3), targets float32 (N, len(CLASSES)) multi-hot).
    """
    data_dir = Path(data_dir)
    images, targets = [], []
    with open(data_dir / "manifest.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["split"] != split:
                continue
            with Image.open(data_dir / rec["image"]) as im:
                images.append(np.asarray(im.convert("RGB")))
            t = np.zeros(len(CLASSES), dtype=np.float32)
            t[[CLASSES.index(lbl) for lbl in rec["labels"]]] = 1.0
            targets.append(t)
    return np.stack(images), np.stack(targets)


def _augment(x: torch.Tensor, gen: torch.Generator, shift: int = 4) -> torch.Tensor:
    """Cheap augmentation of a uint8 batch (N, 3, H, W) -> float32 in [0, 1].

    Random RGB channel permutation (digit and background colours are arbitrary)
    and a random translation of up to ``shift`` px, padding with mid-grey.
    """
    n, _, h, w = x.shape
    perms = torch.argsort(torch.rand(n, 3, generator=gen), dim=1)
    x = x[torch.arange(n)[:, None], perms].float() / 255.0
    padded = nn.functional.pad(x, (shift,) * 4, value=0.25)
    offs = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen).tolist()
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offs)])


def _normalise(x01: torch.Tensor) -> torch.Tensor:
    """float32 (N, 3, H, W) in [0, 1] -> normalised model input."""
    x = (x01 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> float32 sigmoid probabilities (N, len(CLASSES))."""
    model.eval()
    out = [torch.sigmoid(model(preprocess(images[i:i + batch_size])))
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy()


def evaluate(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """Multi-label metrics from probabilities and multi-hot targets, both (N, C)."""
    pred = (probs >= threshold).astype(np.int64)
    true = targets.astype(np.int64)
    return {
        "per_label_accuracy": float((pred == true).mean()),
        "exact_match": float((pred == true).all(axis=1).mean()),
        "micro_f1": float(f1_score(true, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "mAP": float(average_precision_score(true, probs, average="macro")),
    }


def train_demo_model(data_dir=DEFAULT_DATA_DIR, out_path=WEIGHTS_PATH, *, epochs: int = 12,
                     seed: int = 0, max_seconds: float = 170, batch_size: int = 32,
                     lr: float = 6e-3, metrics_path=None, verbose: bool = True) -> dict:
    """Train ``DemoCNN`` on the train split, save it, return test metrics.

    Stops after ``epochs`` or once ``max_seconds`` (wall time, data loading
    included) are spent. If the first epoch shows that ``epochs`` cannot fit in
    the time budget, the schedule is shortened so that the cosine learning rate
    still anneals to zero (only then does the result depend on machine speed).
    Writes ``state_dict`` to ``out_path`` and the metrics as JSON to
    ``metrics_path`` (default: ``metrics.json`` next to ``out_path``).
    """
    t0, cpu0 = time.perf_counter(), time.process_time()
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    log = print if verbose else (lambda *a, **k: None)

    x_np, y_np = load_split(data_dir, "train")
    x_all = torch.from_numpy(x_np).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, H, W)
    y_all = torch.from_numpy(y_np)
    n = len(x_all)
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch

    model = DemoCNN()
    # Start the head at the label priors: skips the slow first phase where
    # the net only learns that most labels are absent.
    prior = y_all.mean(0).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.head.bias.copy_(torch.log(prior / (1 - prior)))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    step, epochs_run, stopped_early = 0, 0, False
    log(f"loaded {n} train images in {time.perf_counter() - t0:.1f}s")
    for epoch in range(epochs):
        if step >= total_steps:
            break
        model.train()
        t_ep, loss_sum = time.perf_counter(), 0.0
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            # Linear warm-up over 100 steps, then cosine decay to 0 at total_steps.
            frac = min(step / max(total_steps, 1), 1.0)
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * frac))
            logits = model(_normalise(_augment(x_all[idx], gen)))
            loss = loss_fn(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            step += 1
            if time.perf_counter() - t0 > max_seconds:
                stopped_early = True
                break
        epochs_run += 1
        elapsed = time.perf_counter() - t0
        log(f"epoch {epoch + 1}/{epochs} loss {loss_sum / n:.4f} "
            f"({time.perf_counter() - t_ep:.1f}s, total {elapsed:.1f}s)")
        if stopped_early:
            log("time budget reached, stopping")
            break
        if epoch == 0 and math.isfinite(max_seconds):  # keep ~10% for the evaluation
            fit = int((0.9 * max_seconds - elapsed) // (time.perf_counter() - t_ep)) + 1
            if fit < epochs:
                log(f"only {fit} epochs fit in {max_seconds}s: shortening the schedule")
                total_steps = fit * steps_per_epoch

    model.eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_path)
    train_seconds = time.perf_counter() - t0

    x_test, y_test = load_split(data_dir, "test")
    metrics = evaluate(predict_proba(model, x_test), y_test)
    metrics.update({
        "n_train": n, "n_test": len(x_test), "epochs": epochs_run, "seed": seed,
        "stopped_by_time": stopped_early, "train_seconds": round(train_seconds, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        # CPU time of all threads: with 2 threads ~2x the wall time on an idle machine,
        # much less when other processes compete for the cores.
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "weights_bytes": out_path.stat().st_size,
    })
    metrics_path = Path(metrics_path) if metrics_path else out_path.parent / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    log(json.dumps(metrics, indent=2))
    return metrics


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR,
                        help="dataset folder (generated there if missing)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights output path")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=170,
                        help="wall-time budget, dataset generation included ('inf': none)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    ensure_demo_dataset(args.data)
    # Dataset generation counts against the same wall-time budget.
    train_demo_model(args.data, args.out, epochs=args.epochs, seed=args.seed,
                     max_seconds=args.max_seconds - (time.perf_counter() - t0))


if __name__ == "__main__":
    main()
