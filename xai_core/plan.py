"""A run's plan: its model passes and its wall time, predicted before the first part (issue 24).

What a run costs is mostly model passes (images pushed through the network, as
``model.passes`` counts them), and every method knows its own from its definition:
:meth:`~xai_core.explainers.base.Explainer.passes_per_image` (steps, samples, masks,
windows) and :meth:`~xai_core.metrics.base.Metric.passes_per_pair` (steps, fractions,
samples, re-explanations). The plan adds them up per image from a **probe of the first
part** — its labels per image (the label policy decides how many pairs an image has), and
the model's time per image on a forward-only batch and on a forward + backward batch at the
run's batch size and device — and adds the fixed costs: the sanity check (the run model's
predictions and original maps, then one set of maps per randomisation step on a copy) and
the fast-path probe, already paid when the plan is made.

Where a definition does not fix the count (anchors' adaptive search, the counterfactual
search, a method without ``passes_per_image``), the plan **measures** it on the probe part
with a fresh instance (so the run's own instance keeps its caches to fill) and extrapolates
per image; the breakdown names each entry's ``source`` ("definition" or "probe").

Predicted seconds = Σ passes × the probe's seconds per image of their kind (gradient passes
for gradient explainers and what re-explains with them, forward-only passes otherwise);
the range is [0.8 ×, 1.5 ×] of that, widened by the probe's own spread: model passes are
most of a run's time, but not all (reading, label selection, writing and the metrics' own
arithmetic are not passes, and run on the same cores).

``passes`` (the plan's total) is what the run then records as ``timing.model_passes`` plus
the sanity check's ``forward_passes`` (the randomised copies): equal on a run whose counts
are all fixed by definition and whose probe part has the labels per image of the others
(``tests/test_plan.py``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .devices import model_device, to_device, to_host
from .labels import select_labels
from .progress import format_seconds

#: The predicted seconds' range around the point estimate (module doc).
LOW, HIGH = 0.8, 1.5


def _time_passes(fn, reps: int = 3, warm: bool = True) -> list[float]:
    if warm:
        fn()  # warm-up: first calls allocate, choose kernels, compile
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def probe_model(ctx, pixels: torch.Tensor, *, small: bool = False) -> dict:
    """Seconds per image of a forward-only batch and of a forward + backward batch of the
    run's batch size on its device (``pixels``, the first part's images, repeated to fill a
    batch). Counted in ``model.passes`` like any pass; recorded as the plan's probe.

    ``small`` (a run of fewer than :data:`OVERHEAD_MIN_IMAGES` images): the probe part's own
    images, timed once each after the prediction pass that warmed the forward path. A full
    batch timed eight times costs more than such a run: EfficientNet-Lite0 at 224 px and batch
    32 took 72 s to plan a two-photo run of 10 s."""
    bs = ctx.batch_size
    reps = 1 if small else -(-bs // max(1, pixels.shape[0]))
    x = torch.cat([pixels] * reps)[:bs] if pixels.shape[0] else pixels
    p0 = int(ctx.model.passes)
    n = max(1, int(x.shape[0]))
    times = 1 if small else 3
    fwd = [t / n for t in _time_passes(lambda: ctx.model.predict_logits(x, batch_size=bs), times, warm=not small)]
    out = {"batch": int(x.shape[0]), "forward_s": fwd}
    if getattr(ctx.model, "supports_gradients", True) and x.shape[0]:
        def grad():
            with torch.enable_grad():
                xi = x.detach().clone().requires_grad_(True)
                logits = ctx.model.logits(xi)
                torch.autograd.grad(logits[:, 0].sum(), xi)
        out["backward_s"] = [t / n for t in _time_passes(grad, times)]
    out["passes"] = int(ctx.model.passes) - p0
    return out


def _measured(ctx, fn) -> int:
    p0 = int(ctx.model.passes)
    fn()
    return int(ctx.model.passes) - p0


#: Runs of fewer images do not measure the time beside the model passes (``_overhead``).
OVERHEAD_MIN_IMAGES = 32


def make_plan(ctx, batches: list[list[int]], todo: list[int] | None = None, *, sanity: bool = True) -> dict:
    """The plan of computing parts ``todo`` (default all) of ``batches`` with ``ctx`` (a built
    :class:`~xai_core.engine.RunContext`), plus the sanity check when ``sanity`` and enabled.
    Runs a probe on the first part to compute (no I/O but reading it; nothing is written).
    Returns plain JSON (the manifest's ``plan``; FORMAT.md)."""
    cfg = ctx.config
    todo = list(range(len(batches))) if todo is None else list(todo)
    n_images = sum(len(batches[p]) for p in todo)
    fixed_spent = int(ctx.model.passes)  # the fast-path probe and setup passes, already paid
    out: dict[str, Any] = {"images": n_images, "parts": len(todo)}
    if not todo:
        out.update(passes=0, seconds=0.0, seconds_range=[0.0, 0.0], per_image={}, breakdown={}, fixed={})
        return out
    kept = getattr(ctx.sample, "kept", None)
    # a sampled run probes a part with pairs to explain (the first of them), if it has one
    first = next((p for p in todo if any(kept.get(i) for i in batches[p])), todo[0]) if kept else todo[0]
    pixels, probs_t, probs, chosen, probe = _probe(ctx, batches, first, small=n_images < OVERHEAD_MIN_IMAGES)
    shape = tuple(int(s) for s in pixels.shape[1:])
    bs = ctx.batch_size
    if ctx.sample is not None:  # the pairs the sample keeps (sampling.py)
        chosen = ctx.sample.keep(chosen, ctx._plan_probe[2])
    counts = [len(c) for c in chosen]
    scale = n_images / max(1, len(counts))  # the probe part's images stand for every image
    probe_labels = sum(counts)
    if kept is not None:  # a sampled run's pre-pass saw every image's pairs: no extrapolation
        counts, scale = [kept[i] for p in todo for i in batches[p]], 1.0
    # what a probe measured stands for its labels: per label, times the labels of the run
    per_label = (scale * sum(counts)) / probe_labels if probe_labels else 0.0

    rows: dict[str, dict] = {}  # name → {passes, kind, source}

    def add(name: str, passes: float, kind: str, source: str) -> None:
        rows[name] = {"passes": int(round(passes)), "kind": kind, "source": source}

    add("predictions", n_images, "forward", "definition")
    fresh_e, fresh_m = cfg.instantiate()
    labels = [[r.label for r in labs] for labs in chosen]
    explainer_kind = {}
    for exp, fresh in zip(ctx.explainers, fresh_e):
        kind = "gradient" if exp.needs_gradients else "forward"
        explainer_kind[exp.instance_name] = kind
        per = [exp.passes_per_image(shape, c) for c in counts]
        if all(p is not None for p in per):
            add(f"explainer {exp.instance_name}", scale * sum(per), kind, "definition")
        else:
            if probe_labels:
                got = _measured(ctx, lambda: fresh.explain_grouped(ctx.model, pixels, labels, batch_size=bs)) * per_label
            else:  # no label in the probe part: one label of a stand-in image, per label of the run
                got = _fresh_one(ctx, fresh, shape) * scale * sum(counts)
            add(f"explainer {exp.instance_name}", got, kind, "probe")
        for met, mfresh in zip(ctx.metrics, fresh_m):
            kind_m = kind if "explainer" in met.needs else "forward"
            per_pair = met.passes_per_pair(shape, exp)
            name = f"metric {met.instance_name} of {exp.instance_name}"
            if per_pair is not None:
                seen = len(counts) if ctx.sample is None else sum(1 for c in counts if c)
                n = (seen if met.label_agnostic else sum(counts)) * per_pair
                add(name, scale * n, kind_m, "definition")
            else:
                add(name, per_label * _probe_metric(ctx, mfresh, fresh, pixels, probs_t, chosen), kind_m, "probe")
    if cfg.uncertainty.enabled:
        u = cfg.uncertainty
        # passes per image, +1 per part to locate the head layer when dropout is inserted
        add("uncertainty", n_images * u.passes + (len(todo) if u.dropout > 0 else 0), "forward", "definition")
    if cfg.counterfactual.enabled:
        add("counterfactual", per_label * _probe_counterfactual(ctx, pixels, chosen, probs), "forward", "probe")
    fixed = {"setup": fixed_spent, "plan_probe": probe["passes"]}
    if sanity and cfg.sanity.enabled:
        _sanity_rows(ctx, shape, add, explainer_kind)

    fwd, bwd = probe["forward_s"], probe.get("backward_s") or probe["forward_s"]
    rate = {"forward": float(np.median(fwd)), "gradient": float(np.median(bwd))}
    spread = (min(min(fwd) / rate["forward"], min(bwd) / rate["gradient"]),
              max(max(fwd) / rate["forward"], max(bwd) / rate["gradient"]))
    for r in rows.values():
        r["seconds"] = round(r["passes"] * rate[r["kind"]], 3)
    # Model passes are not all of a part's time (the metrics' arithmetic, searches, label
    # selection): one image of the probe part computed for real says how much more, per image.
    # Measured only where it pays: computing probe images for real costs a few images' worth of
    # work, a few per cent of a run of OVERHEAD_MIN_IMAGES but most of a run of a handful.
    if "beside_s" not in probe:
        probe["beside_s"] = (_overhead(ctx, batches[first], chosen, rate) if n_images >= OVERHEAD_MIN_IMAGES
                             else None)
    per_image_s, per_part_s = probe["beside_s"] or (0.0, 0.0)
    rows["beside the passes"] = {"passes": 0, "kind": "forward",
                                 "source": "probe" if probe["beside_s"] else f"not measured (< {OVERHEAD_MIN_IMAGES} images)",
                                 "seconds": round(per_image_s * n_images + per_part_s * len(todo), 3)}
    total = sum(r["passes"] for r in rows.values())
    seconds = sum(r["seconds"] for r in rows.values())
    lo, hi = LOW * spread[0] * seconds, HIGH * spread[1] * seconds
    per_image = {k: round(v["passes"] / n_images, 3) for k, v in rows.items() if not k.startswith("sanity") and v["passes"]}
    out.update({
        "passes": int(total), "seconds": round(seconds, 3), "seconds_range": [round(lo, 3), round(hi, 3)],
        "passes_per_image": round(sum(per_image.values()), 3),
        "labels_per_image": round(float(np.mean(counts)), 3) if counts else 0.0,
        "per_image": per_image, "breakdown": rows, "fixed": fixed,
        "probe": {"part": first, "images": len(counts), "batch": probe["batch"], "device": str(pixels.device),
                  "forward_s_per_image": round(rate["forward"], 6),
                  "gradient_s_per_image": round(rate["gradient"], 6) if "backward_s" in probe else None},
    })
    return out


def _probe(ctx, batches, first: int, small: bool = False):
    """(pixels, probabilities as a tensor and on the host, chosen labels, model timing) of
    part ``first``, computed once per context (a budget re-plans several times)."""
    from .engine import load_part  # the engine imports nothing of this module

    cache = getattr(ctx, "_plan_probe", None)
    if cache is not None and cache[0] == first:
        return cache[1]
    batch = load_part(ctx, batches[first])
    pixels = to_device(batch.pixels, model_device(ctx.model))
    probs_t = ctx.model.activate(ctx.model.predict_logits(pixels, batch_size=ctx.batch_size))
    probs = to_host(probs_t).numpy()
    chosen = select_labels(probs, [s.labels for s in batch.samples], ctx.config.labels, ctx.model.activation)
    probe = probe_model(ctx, pixels, small=small)
    probe["passes"] += len(chosen)  # the probe's predictions
    ctx._plan_probe = (first, (pixels, probs_t, probs, chosen, probe), [s.id for s in batch.samples])
    return ctx._plan_probe[1]


def _overhead(ctx, indices: list[int], chosen, rate: dict) -> tuple[float, float]:
    """(seconds per image, seconds per part) a part spends beside its model passes (priced at
    the probe's rates): one probe image computed for real (the first with a label, in a
    throw-away part: nothing is written, the run's timing is restored); when that is cheap,
    once more warm, then with a second image, which tells the per-part share apart."""
    from .engine import compute_part

    labelled = [i for i, c in enumerate(chosen) if c]
    if not labelled:
        return 0.0, 0.0
    stats = {k: (dict(v) if isinstance(v, dict) else v) for k, v in ctx.stats.items()}
    grad_share = _gradient_share(ctx)

    def beside(picks) -> float:
        p0, t0 = int(ctx.model.passes), time.perf_counter()
        compute_part(ctx, 999_999_999, [indices[i] for i in picks])  # a part number no run has: its own seed
        wall, passes = time.perf_counter() - t0, int(ctx.model.passes) - p0
        return max(0.0, wall - passes * (grad_share * rate["gradient"] + (1 - grad_share) * rate["forward"]))

    try:
        one = beside(labelled[:1])
        if one > 5.0 or len(labelled) < 2:  # costly: the first call's one-off costs are small beside it
            return one, 0.0
        one = min(one, beside(labelled[:1]))  # warm: one-off costs (layer probes, kernels) paid
        two = beside(labelled[:2])
    finally:
        ctx.stats = stats
    per_image = max(0.0, two - one)
    return per_image, max(0.0, one - per_image)


def _gradient_share(ctx) -> float:
    """The share of the explainers that need gradients (a rough price of an average pass)."""
    exps = ctx.explainers
    return sum(1 for e in exps if e.needs_gradients) / len(exps) if exps else 0.0


def _probe_metric(ctx, met, exp, pixels, probs_t, chosen) -> int:
    """Passes of ``met`` on the probe part's pairs explained by ``exp`` (fresh instances)."""
    from .metrics.base import MetricContext

    bs, seed = ctx.batch_size, ctx.config.seed
    fn = lambda x, t: exp.explain(ctx.model, x, t, batch_size=bs)  # noqa: E731
    if met.label_agnostic:
        top = to_device(torch.as_tensor(to_host(probs_t).numpy().argmax(1)), pixels.device)
        mctx = MetricContext(ctx.model, pixels, top, None, explain=fn, batch_size=bs, seed=seed, probs=probs_t)
        return _measured(ctx, lambda: met.evaluate(mctx))
    rows = [(i, r.label) for i, labs in enumerate(chosen) for r in labs]
    if not rows:
        return 0
    idx = torch.as_tensor([i for i, _ in rows])
    tgt = torch.as_tensor([t for _, t in rows])
    maps = to_host(exp.explain(ctx.model, pixels[idx], tgt, batch_size=bs))
    size = tuple(pixels.shape[2:])
    mctx = MetricContext(ctx.model, pixels[idx], tgt, maps, masks=np.ones((len(rows), *size), bool),
                         has_mask=np.ones(len(rows), bool), is_ground_truth=np.ones(len(rows), bool),
                         explain=fn, batch_size=bs, seed=seed, probs=probs_t[idx])
    return _measured(ctx, lambda: met.evaluate(mctx))


def _probe_counterfactual(ctx, pixels, chosen, probs) -> int:
    from .counterfactual import hierarchical_occlusion

    keep = ctx.config.labels.keep_threshold
    targets = [[r.label for r in labs if r.prob >= keep] for labs in chosen]
    return _measured(ctx, lambda: hierarchical_occlusion(
        ctx.model, pixels, targets, threshold=keep, layers=ctx.config.counterfactual.layers,
        batch_size=ctx.batch_size, probs=torch.from_numpy(probs)))


def _sanity_rows(ctx, shape, add, explainer_kind: dict) -> None:
    """The sanity check: the run model's predictions and original maps on its images (one
    label each, the top class), then one set of maps per cascading step on a copy."""
    from .sanity import parameterised_layers

    n = min(ctx.config.sanity.images, len(ctx.dataset))
    steps = min(len(parameterised_layers(ctx.model.net, shape)), ctx.config.sanity.steps)  # its cascading stages
    add("sanity predictions", n, "forward", "definition")
    for exp in ctx.explainers:
        per = exp.passes_per_image(shape, 1)
        source = "definition"
        if per is None:
            per, source = _fresh_one(ctx, exp, shape), "probe"
        add(f"sanity {exp.instance_name}", n * per * (1 + steps), explainer_kind[exp.instance_name], source)


def _fresh_one(ctx, exp, shape) -> int:
    """Passes of a fresh copy of ``exp`` on one probe image (an adaptive method)."""
    fresh = type(exp)(_params(exp), instance_name=exp.instance_name)
    x = to_device(torch.rand(1, *shape, generator=torch.Generator().manual_seed(0)), model_device(ctx.model))
    return _measured(ctx, lambda: fresh.explain(ctx.model, x, [0], batch_size=ctx.batch_size))


def _params(obj) -> dict:
    import dataclasses

    return dataclasses.asdict(obj.params)


def plan_lines(plan: dict) -> list[str]:
    """The plan as the lines ``run`` prints before the first part and ``--plan`` prints alone."""
    if not plan.get("images"):
        return ["plan: nothing to compute"]
    lo, hi = plan["seconds_range"]
    head = (f"plan: {plan['images']} images in {plan['parts']} parts, {plan['labels_per_image']:g} labels per image "
            f"(probe of part {plan['probe']['part']}); {plan['passes']:,} model passes "
            f"({plan['passes_per_image']:,.0f} per image); about {format_seconds(plan['seconds'])} "
            f"({format_seconds(lo)} – {format_seconds(hi)}) on {plan['probe']['device']}")
    lines = [head]
    groups: dict[str, list] = {}  # an explainer with the metrics scoring it; the analyses; the sanity check
    for name, r in plan["breakdown"].items():
        key = (name.split(" of ")[-1] if name.startswith("metric ") else name.removeprefix("explainer ")
               if name.startswith("explainer ") else "sanity check" if name.startswith("sanity") else name)
        groups.setdefault(key, []).append(r)
    for key, rs in sorted(groups.items(), key=lambda kv: -sum(r["passes"] for r in kv[1])):
        probe = any(r["source"] == "probe" for r in rs)
        lines.append(f"  {key:32s} {sum(r['passes'] for r in rs):>12,} passes  "
                     f"{format_seconds(sum(r['seconds'] for r in rs)):>12s}{'  (measured on the probe)' if probe else ''}")
    f = plan.get("fixed") or {}
    lines.append(f"  already spent: {f.get('setup', 0):,} setup passes (fast-path probe), "
                 f"{f.get('plan_probe', 0):,} for this plan's probe")
    return lines

