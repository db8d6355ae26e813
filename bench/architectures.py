"""Axioms of the rule-based explainers on modern architectures (issue 16).

On the five test architectures of ``tests/archs.py`` (a MobileNetV2-style ReLU6 net — the
control —, a ViT on ``nn.TransformerEncoder``, a ViT with hand-written attention, a Swin-like
net, a ConvNeXt-like net), trained for ``BENCH_ARCH_STEPS`` Adam steps on scikit-learn's
digits (8 × 8, upsampled to 32 × 32 RGB; 0 = random weights), each explainer explains the
top-1 class of ``BENCH_ARCH_IMAGES`` held-out digits, and the script prints, measured from
the maps and the model's logits alone (so it reads the same on older code):

* ``completeness``: median and worst |Σ map − (F(x) − F(0))| / |F(x) − F(0)| — DeepLIFT,
  Integrated Gradients at 8 and 64 steps; the method's own axiom;
* ``r(gradient)``: median Pearson correlation of the raw (C, H, W) attribution with the plain
  gradient — Guided Backprop and Deconvolution; near 1 means the rule changed nothing;
* ``layer``: the layer the CAM family resolved by itself (and the map grid), or the error;
* what the explainer did: ran, or refused (the first words of its one-line reason), and
  whether the run-level diagnostic of ``xai_core/axioms.py`` flags its maps.

    python bench/architectures.py                  # trained for 300 steps each (weights cached)
    BENCH_ARCH_STEPS=0 python bench/architectures.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from archs import ARCHITECTURES, SIDE  # noqa: E402

from xai_core.errors import XaiError  # noqa: E402
from xai_core.explainers import EXPLAINERS  # noqa: E402
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel  # noqa: E402

STEPS = int(os.environ.get("BENCH_ARCH_STEPS", "300"))
# Trained weights are kept here (per architecture and step count) so that a second run — the
# same figures on newer code — skips the training; training is deterministic (seeded, CPU).
CACHE = Path(os.environ.get("BENCH_ARCH_CACHE", "/tmp/xai_bench_architectures"))
N_IMAGES = int(os.environ.get("BENCH_ARCH_IMAGES", "16"))
METHODS = {  # name in the table → (registry type, params)
    "deeplift": ("deeplift", {}),
    "deeplift_allowed": ("deeplift", {"allow_unsupported": True}),
    "ig_8": ("integrated_gradients", {"steps": 8}),
    "ig_64": ("integrated_gradients", {"steps": 64}),
    "guided_backprop": ("guided_backprop", {}),
    "deconvolution": ("deconvolution", {}),
    "gradcam": ("gradcam", {}),
    "attention_rollout": ("attention_rollout", {}),
    "attention_relevance": ("attention_relevance", {}),
}


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 digits as (N, 3, 32, 32) float32 in [0, 1] and (N,) labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return x.clamp(0, 1), torch.from_numpy(d.target).long()


def train(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """``steps`` Adam steps (batch 64, lr 3e-3) on (x, y); returns the accuracy on x."""
    if steps:
        net.train()
        for p in net.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(steps):
            idx = torch.randint(0, x.shape[0], (64,), generator=g)
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def flag(exp, n: int) -> str:
    """The run-level verdict of xai_core/axioms.py on these maps ("" where that module or the
    figure does not exist: older versions)."""
    try:
        import pandas as pd

        from xai_core.axioms import summarise, warnings
    except ImportError:
        return ""
    rows = [(exp.instance_name, k, float(v)) for k, vals in exp.pair_diagnostics(n).items() for v in vals]
    w = warnings(summarise(pd.DataFrame(rows, columns=["explainer", "key", "value"])))
    return " — FLAGGED: " + w[exp.instance_name][0].split(": ", 1)[1] if w else " — not flagged"


def measure(name: str, handle, x: torch.Tensor, t: torch.Tensor) -> str:
    kind, params = METHODS[name]
    if kind not in EXPLAINERS:
        return "(not in this version)"
    try:
        exp = EXPLAINERS.get(kind)(params)
    except XaiError:
        return "(not in this version)"
    try:
        if kind in ("guided_backprop", "deconvolution"):
            raw = exp.rule_gradients(handle, x.clone(), t)
            xx = x.clone().requires_grad_(True)
            (plain,) = torch.autograd.grad(handle(xx).gather(1, t[:, None]).sum(), xx)
            r = pearson(raw, plain)
            return f"r(gradient) median {r.median():.3f}, min {r.min():.3f}" + flag(exp, len(x))
        maps = exp.explain(handle, x, t)
    except XaiError as e:
        return "refused: " + str(e).split(": ", 2)[-1][:110]
    except Exception as e:  # an old version failing outright is a finding too
        return f"crashed: {type(e).__name__}: {str(e).splitlines()[0][:100]}"
    if kind in ("deeplift", "integrated_gradients"):
        with torch.no_grad():
            gap = (handle(x) - handle(torch.zeros_like(x))).gather(1, t[:, None])[:, 0].double()
        err = (maps.flatten(1).sum(1).double() - gap).abs() / gap.abs().clamp_min(1e-6)
        return f"completeness median {err.median():.2%}, worst {err.max():.2%}" + flag(exp, len(x))
    if kind == "gradcam":
        info = getattr(exp, "resolved", None)
        extra = f" ({info.get('layout')}, grid {info.get('grid')})" if isinstance(info, dict) else ""
        zero = int((maps.flatten(1).abs().sum(1) == 0).sum())
        return f"layer {exp.resolved_layer!r}{extra}; {zero}/{len(maps)} all-zero maps"
    return f"ran; {int((maps.flatten(1).abs().sum(1) > 0).sum())}/{len(maps)} non-zero maps"


def main() -> None:
    EXPLAINERS.names()  # import every method now: the code measured is the code at start
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    x_all, y_all = digits()
    x_train, y_train = x_all[:1500], y_all[:1500]
    x_test = x_all[1500:1500 + N_IMAGES]
    print(f"# architectures: {STEPS} training steps each, {N_IMAGES} test digits, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for arch, factory in ARCHITECTURES.items():
        t0 = time.perf_counter()
        net = factory()
        cached = CACHE / f"{arch}-{STEPS}.pt"
        if cached.is_file():
            net.load_state_dict(torch.load(cached, weights_only=True))
            acc = train(net, x_train, y_train, 0)
        else:
            acc = train(net, x_train, y_train, STEPS)
            CACHE.mkdir(parents=True, exist_ok=True)
            torch.save(net.state_dict(), cached)
        handle = ClassifierHandle(PixelSpaceModel(net, (0.5,) * 3, (0.5,) * 3), "softmax", (SIDE, SIDE), 10)
        with torch.no_grad():
            t = handle.predict(x_test).argmax(1)
        print(f"{arch}: train accuracy {acc:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        for name in METHODS:
            print(f"  {name:20s} {measure(name, handle, x_test, t)}", flush=True)


if __name__ == "__main__":
    main()
