"""Throughput of every evaluation metric on the demo model, against a per-sample loop.

For each metric it prints: (image, label) pairs per second, forward passes per pair (counted
by the model handle; explanations of perturbed inputs are counted as explained pairs), and
the speed-up over a straightforward per-sample loop measured in the same run.

The loop computes the same numbers with the same code and the same random draws, but one
image at a time: every forward pass gets a batch of one image, every re-explanation one pair,
and the metric builds its perturbed images in chunks of one (``batch_size=1``) — the way
MindSpore's benchmarks evaluate one sample at a time. It runs on a prefix of the pairs
(draws are made pair by pair in order, so a prefix sees the same noise) and its values are
checked against the batched ones.

    python bench/metrics.py                       # all metrics, 32 pairs, gradient maps
    python bench/metrics.py --pairs 64 --metrics deletion_auc max_sensitivity --threads 2

Timings on a shared CPU are noisy: compare the ratio, which is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import header, time_per_image  # noqa: E402
from xai_core.data import DatasetSpec, object_mask, open_dataset, prepare_batch  # noqa: E402
from xai_core.explainers import EXPLAINERS  # noqa: E402
from xai_core.metrics import METRICS, MetricContext  # noqa: E402
from xai_core.models.handle import ClassifierHandle, PixelSpaceModel  # noqa: E402


def demo_handle(weights: Path | None) -> tuple[ClassifierHandle, str]:
    from xai_core.demo import CLASSES, IMAGE_SIZE, MEAN, STD, WEIGHTS_PATH
    from xai_core.demo.model import DemoCNN, load_demo_model

    path = Path(weights or WEIGHTS_PATH)
    if path.is_file():
        net, note = load_demo_model(path), f"demo weights {path}"
    else:  # timings do not depend on the weights; the values do
        torch.manual_seed(0)
        net, note = DemoCNN().eval(), "UNTRAINED demo network (weights file missing)"
    handle = ClassifierHandle(PixelSpaceModel(net, MEAN, STD), "sigmoid", (IMAGE_SIZE, IMAGE_SIZE), len(CLASSES))
    return handle, note


def demo_pairs(data: Path, n_pairs: int, size: tuple[int, int]):
    """(images, targets, masks, has_mask) for the first ``n_pairs`` (test image, true label)."""
    from xai_core.demo.dataset import ensure_demo_dataset

    ensure_demo_dataset(data)
    ds = open_dataset(DatasetSpec(kind="manifest", path=str(data / "manifest.jsonl"), split="test"))
    imgs, tgts, masks = [], [], []
    i = 0
    while len(tgts) < n_pairs and i < len(ds):
        batch = prepare_batch(ds, [i], size)
        for label in batch.samples[0].labels:
            m = object_mask(batch.boxes[0], batch.masks[0], label, size)
            imgs.append(batch.pixels[0])
            tgts.append(label)
            masks.append(m if m is not None else np.zeros(size, bool))
        i += 1
    p = min(n_pairs, len(tgts))
    has = np.array([m.any() for m in masks[:p]])
    return torch.stack(imgs[:p]), torch.as_tensor(tgts[:p]), np.stack(masks[:p]), has


class OneByOne:
    """A handle whose every forward pass is a batch of one image (the per-sample loop)."""

    def __init__(self, handle: ClassifierHandle):
        self.h = handle

    def __getattr__(self, name):
        return getattr(self.h, name)

    def logits(self, x):
        return torch.cat([self.h.logits(x[i: i + 1]) for i in range(x.shape[0])]) if x.shape[0] else self.h.logits(x)

    __call__ = logits

    def probs(self, x):
        return self.h.activate(self.logits(x))

    @torch.no_grad()
    def predict(self, x, *, batch_size=1):
        return self.probs(x)


def explain_fn(model, explainer, batch_size, one_by_one):
    """``ctx.explain``: batched, or one pair per explainer call."""
    if one_by_one:
        def explain(x, t):
            return torch.cat([explainer.explain(model, x[i: i + 1], t[i: i + 1], batch_size=1) for i in range(x.shape[0])])
    else:
        def explain(x, t):
            return explainer.explain(model, x, t, batch_size=batch_size)
    return explain


def make_ctx(metric, model, explainer, images, targets, masks, has, sal, probs, batch_size, one_by_one):
    explain = explain_fn(model, explainer, batch_size, one_by_one)
    if metric.label_agnostic:
        uniq = torch.unique_consecutive(images, dim=0)  # pairs of one image are adjacent
        p = model.predict(uniq, batch_size=batch_size)
        return MetricContext(model, uniq, p.argmax(1), None, explain=explain, batch_size=batch_size, probs=p)
    return MetricContext(model, images, targets, sal, masks=masks, has_mask=has, is_ground_truth=np.ones(len(targets), bool),
                         explain=explain, batch_size=batch_size, probs=probs)


def timed(metric, ctx, handle):
    handle.passes = 0
    t0 = time.perf_counter()
    raw = metric.evaluate(ctx)
    return raw, time.perf_counter() - t0, handle.passes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=int(os.environ.get("BENCH_METRIC_PAIRS", 32)), help="(image, label) pairs for the batched run")
    ap.add_argument("--loop-pairs", type=int, default=8, help="prefix of the pairs run by the per-sample loop")
    ap.add_argument("--metrics", nargs="*", default=None, help="metric names (default: all registered)")
    ap.add_argument("--explainer", default="gradient")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "demo")
    ap.add_argument("--weights", type=Path, default=None, help="demo weights file (default: the committed one)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    header("metrics: (image, label) pairs per second, passes per pair, speed-up over a per-sample loop",
           "python bench/metrics.py")
    handle, note = demo_handle(args.weights)
    # The most batching alone can give: a pass of 1 image against a pass of `batch` images,
    # per image. A metric's speed-up over the loop cannot exceed it by much unless the loop
    # also does more work.
    f1, fb = (time_per_image(handle.module, b, grad=False) for b in (1, args.batch_size))
    g1, gb = (time_per_image(handle.module, b, grad=True) for b in (1, args.batch_size))
    print(f"   batching bound on this machine: forward {f1 * 1e3:.2f} ms/img at batch 1 vs {fb * 1e3:.2f} at batch "
          f"{args.batch_size} ({f1 / fb:.1f}×); forward+backward {g1 * 1e3:.2f} vs {gb * 1e3:.2f} ({g1 / gb:.1f}×)")
    images, targets, masks, has = demo_pairs(args.data, args.pairs, handle.input_size)
    explainer = EXPLAINERS.get(args.explainer)()
    sal = explainer.explain(handle, images, targets, batch_size=args.batch_size)
    probs = handle.predict(images, batch_size=args.batch_size)
    k = min(args.loop_pairs, len(targets))
    print(f"model: {note}; {len(targets)} pairs ({k} in the loop), explainer {args.explainer}, "
          f"batch {args.batch_size}, {torch.get_num_threads()} thread(s)")
    print(f"{'metric':<26}{'pairs/s':>9}{'loop pairs/s':>14}{'speed-up':>10}{'passes/pair':>13}"
          f"{'expl/pair':>11}{'max |Δ| vs loop':>17}")
    names = args.metrics or METRICS.names()
    for name in names:
        met = METRICS.get(name)()
        fast_ctx = make_ctx(met, handle, explainer, images, targets, masks, has, sal, probs, args.batch_size, False)
        n_units = len(fast_ctx)
        explained = [0]
        inner = fast_ctx.explain
        if inner is not None:
            def counting(x, t, _inner=inner):
                explained[0] += x.shape[0]
                return _inner(x, t)
            fast_ctx.explain = counting
        raw, t_fast, passes = timed(met, fast_ctx, handle)
        n_expl = explained[0]

        # The loop: same code, one image per forward pass, on a prefix of the pairs.
        one = OneByOne(handle)
        if met.label_agnostic:
            kk = max(1, min(k, n_units))
            uniq = fast_ctx.images[:kk]
            slow_ctx = MetricContext(one, uniq, fast_ctx.targets[:kk], None, batch_size=1, probs=fast_ctx.probs[:kk],
                                     explain=explain_fn(one, explainer, 1, True))
        else:
            kk = k
            slow_ctx = make_ctx(met, one, explainer, images[:kk], targets[:kk], masks[:kk], has[:kk], sal[:kk],
                                probs[:kk], 1, True)
        raw_slow, t_slow, _ = timed(met, slow_ctx, handle)
        both = np.isfinite(raw[:kk]) & np.isfinite(raw_slow)
        delta = float(np.abs(raw[:kk][both] - raw_slow[both]).max()) if both.any() else float("nan")
        fast_rate = n_units / t_fast if t_fast > 0 else float("inf")
        slow_rate = kk / t_slow if t_slow > 0 else float("inf")
        ratio = fast_rate / slow_rate if slow_rate not in (0, float("inf")) else float("nan")
        unit = " (images)" if met.label_agnostic else ""
        # Map-only metrics use no model: the loop runs the very same vectorised code, so a
        # ratio would only measure timer noise.
        speed = f"{ratio:>9.1f}×" if passes or n_expl else f"{'—':>10}"
        print(f"{name + unit:<26}{fast_rate:>9.1f}{slow_rate:>14.1f}{speed}{passes / n_units:>13.1f}"
              f"{n_expl / n_units:>11.1f}{delta:>17.2e}")
    print("passes/pair: forward passes counted by the model handle (p(x) given, as the engine can pass it;\n"
          "deletion / insertion / infidelity need one more without it); expl/pair: perturbed pairs re-explained\n"
          "(each costs the explainer's own passes, included in passes/pair for gradient maps).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
