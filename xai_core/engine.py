"""Computation of one part (batch) of a run, with no I/O but reading the dataset.

Used by the single-process runner and by Dask workers alike, so both produce identical parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .devices import model_device, to_device, to_host
from .errors import ConfigError, ModelError
from .data import open_dataset, object_mask, prepare_batch
from .finite import PassWatch, combine
from .labels import given_labels, select_labels
from .metrics.base import MetricContext
from .models.batching import CPU_BATCH
from .models.loading import device_record, load_model, model_identity
from .part_analyses import counterfactuals_of, uncertainty_of
from .startup import decide_fast_forward, explain_batch


@dataclass
class RunContext:
    """What a process loads once per run: dataset, model, explainer and metric objects."""

    config: RunConfig
    dataset: Any
    model: Any
    explainers: list
    metrics: list
    stats: dict = field(default_factory=lambda: {"explain_s": {}, "metric_s": {}, "analysis_s": {}})
    fast_forward: dict | None = None  # how forward-only passes run (manifest model.fast_forward)
    model_ident: dict | None = None  # the manifest's model identity; None: from the configuration
    device: dict | None = None  # manifest model.device: requested, resolved, name, reason
    batch_size: int | None = None  # explain_batch_size resolved ("auto": the CPU's 64, a GPU's probe)
    sample: Any = None  # a sampling.Sampler: the pairs explained (None: every chosen label)

    def __post_init__(self):
        if self.batch_size is None:  # a context built without a model (the Dask driver)
            b = self.config.explain_batch_size
            self.batch_size = CPU_BATCH if b == "auto" else int(b)

    @classmethod
    def build(cls, config: RunConfig, *, network=None, dataset=None, model=None, progress=None,
              fast_forward: dict | None = None) -> "RunContext":
        """Load what ``config`` names. In-memory objects replace what it cannot load
        (``xai_core.explain``, the explanation service): ``network`` an ``nn.Module`` (with
        ``model.module`` set), ``dataset`` a :class:`~.data.memory.MemoryDataset`, ``model`` an
        already loaded handle (shared by the service's configurations). ``progress``: a
        :class:`~xai_core.progress.RunProgress` for the lines of the fast-path probe (None:
        silent, as in a Dask worker). ``fast_forward``: a recorded decision (the manifest's
        ``model.fast_forward``) to follow instead of deciding again — ``--resume`` and Dask
        workers pass the run's (see :func:`decide_fast_forward`)."""
        t0 = time.perf_counter()
        dataset = dataset if dataset is not None else open_dataset(config.dataset)
        device = device_record(config.model)  # an unavailable device stops here, before any work
        if model is None:
            model = load_model(config.model, num_classes=len(dataset.classes), network=network)
        explainers, metrics = config.instantiate()
        check_localisation(dataset, metrics, config)
        check_capabilities(model, config, explainers)
        for e in explainers:  # e.g. DeepLIFT on TorchScript: refused before any work
            e.check_model(model)
        t1 = time.perf_counter()
        batch = explain_batch(model, config, dataset)
        model, fast = decide_fast_forward(model, config, dataset, explainers, metrics, batch_size=batch,
                                          decided=fast_forward, progress=progress)
        ident = model_identity(config.model, network)
        if getattr(model, "transport", None):  # a served model: binary tensors or JSON (manifest model.transport)
            ident["transport"] = dict(model.transport)
        ctx = cls(config, dataset, model, explainers, metrics, fast_forward=fast, model_ident=ident,
                  device=device, batch_size=batch)
        ctx.stats["setup_s"] = {"model": t1 - t0, "fast_forward": time.perf_counter() - t1}
        return ctx

    def model_identity(self) -> dict:
        """What the manifest records as the model's identity (and ``--resume`` compares)."""
        return self.model_ident if self.model_ident is not None else model_identity(self.config.model)

    def model_record(self) -> dict:
        """The manifest's ``model`` entries this process decided: device, precision, batches
        (a context without a model — the Dask driver — records what was asked for)."""
        if self.model is None:
            return {"device": {"requested": self.config.model.device, "resolved": None,
                               "reason": "resolved by each worker, where the model runs"},
                    "precision": self.config.model.precision,
                    "batches": {"explain_batch_size": self.config.explain_batch_size, "resolved": None}}
        batches = getattr(self.model, "batches", None)
        return {"device": self.device, "precision": getattr(self.model, "precision", self.config.model.precision),
                "batches": {"explain_batch_size": self.config.explain_batch_size, "resolved": self.batch_size,
                            **(batches.record() if batches is not None else {})}}

    @property
    def fast_passes(self) -> int:
        """Images pushed through the ONNX Runtime fast path so far (0 when it is off)."""
        return int(getattr(self.model, "fast_passes", 0))

    @property
    def classes(self) -> list[str]:
        return list(self.dataset.classes)


def check_localisation(dataset, metrics: list, config: RunConfig) -> None:
    """Refuse localisation metrics on a dataset without a single box or mask: every score
    would be n/a, and the run would look as if it had measured something."""
    need = [m.instance_name for m in metrics if "masks" in m.needs]
    if need and not getattr(dataset, "has_objects", True):
        kind = "an image folder has none" if config.dataset.kind == "imagefolder" else "no item of it has one"
        raise ConfigError(f"metrics {need} score maps against object boxes or masks, but dataset "
                          f"{config.dataset.path!r} has none ({kind}); remove them, or use a manifest with `boxes` / "
                          "`mask` (README, Bring your own model)")


def check_capabilities(model, config: RunConfig, explainers: list) -> None:
    """Refuse, before any work, what a forward-only model (ONNX, served) cannot do. ``model``
    None (the Dask driver, which loads no model) judges by the configuration alone."""
    if model is None:
        spec = config.model
        kind = "onnx" if spec.onnx else f"a server ({spec.url})" if spec.url else None
    else:
        kind = None if getattr(model, "supports_gradients", True) else getattr(model, "kind", "a forward-only runtime")
    if kind is None:
        return
    grad = [e.instance_name for e in explainers if e.needs_gradients]
    if grad:
        raise ConfigError(f"explainers {grad} need gradients, which a model served by {kind} cannot give; "
                          "use perturbation explainers (occlusion, rise, lime, kernel_shap, anchors, random)")
    inside = [e.instance_name for e in explainers if e.needs_python_forward]
    if inside:  # e.g. attention rollout: no gradient, but it reads the attention inside the forward pass
        raise ConfigError(f"explainers {inside} read layers inside the PyTorch forward pass, which a model served by "
                          f"{kind} does not expose; use perturbation explainers (occlusion, rise, lime, kernel_shap, "
                          "anchors, random)")
    if config.uncertainty.enabled and config.uncertainty.dropout > 0:
        raise ConfigError(f"uncertainty (MC dropout) needs the PyTorch module, which a model served by {kind} lacks; "
                          "set uncertainty.dropout: 0 with tta_shift / tta_noise (test-time augmentation), "
                          "or uncertainty.enabled: false")
    if config.sanity.enabled:
        raise ConfigError(f"the randomisation sanity check needs the PyTorch weights, which a model served by {kind} lacks; "
                          "set sanity.enabled: false")


def part_indices(n: int, batch_size: int) -> list[list[int]]:
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def check_finite(logits: np.ndarray, part: int, batch) -> None:
    """Refuse NaN/inf logits for the dataset's own images: stored, they would poison every
    score of the run silently. Logits, not probabilities: ±inf gives probabilities of exactly
    0 or 1, which look finite."""
    bad = ~np.isfinite(logits).all(axis=tuple(range(1, logits.ndim)))
    if bad.any():
        ids = [batch.samples[i].id for i in np.flatnonzero(bad)]
        raise ModelError(f"part {part} (items {batch.indices[0]}–{batch.indices[-1]}): the model returned NaN or "
                         f"infinite logits for {len(ids)} sample(s) {ids[:5]}{'…' if len(ids) > 5 else ''}; "
                         "expected finite logits (check the weights and the input normalisation)")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


def load_part(ctx: RunContext, indices: list[int]):
    """Read and decode a part's items at the model's input size (a :class:`PreparedBatch`).

    No model pass and no random numbers (a prefetch thread runs it ahead of
    :func:`compute_part`, which seeds per part): only the dataset and the model's channels.
    On a CUDA model the pixels are pinned, so that their copy to the device can overlap."""
    cfg = ctx.config
    batch = prepare_batch(ctx.dataset, indices, tuple(cfg.model.input_size), channels=ctx.model.channels,
                          resize=cfg.dataset.resize)
    if model_device(ctx.model).type == "cuda":
        batch.pixels = batch.pixels.pin_memory()
    return batch


def compute_part(ctx: RunContext, part: int, indices: list[int], batch=None, *, targets=None) -> dict:
    """Everything ``write_part`` needs for one part: column dicts and arrays. ``batch``: the
    part's :func:`load_part`, when it was read ahead (else it is read here). ``targets``: per
    image, the labels to explain instead of the label policy's (an explanation request's), or
    a function of the (N, K) probabilities returning them (a request's top-k)."""
    cfg = ctx.config
    passes0, fast0 = int(ctx.model.passes), ctx.fast_passes
    # Seeded per part, so a resumed or distributed run reproduces the same numbers.
    seed_everything(cfg.seed * 1_000_003 + part)
    size = tuple(cfg.model.input_size)
    bs = ctx.batch_size
    if batch is None:
        batch = load_part(ctx, indices)
    # The part's pixels cross to the model's device once; maps and scores come back once per
    # explainer and metric (xai_core/devices.py).
    pixels = to_device(batch.pixels, model_device(ctx.model))
    logits = ctx.model.predict_logits(pixels, batch_size=bs)
    check_finite(to_host(logits).numpy(), part, batch)
    probs_t = ctx.model.activate(logits)
    probs = to_host(probs_t).numpy()
    watch = PassWatch(ctx.model, f"part {part}", cfg.strict)
    gts = [s.labels for s in batch.samples]
    if callable(targets):
        targets = targets(probs)
    chosen = (select_labels(probs, gts, cfg.labels, ctx.model.activation) if targets is None
              else given_labels(probs, gts, targets, cfg.labels, ctx.model.activation))
    if ctx.sample is not None:  # explain what matters: the pairs the sample keeps (sampling.py)
        chosen = ctx.sample.keep(chosen, [s.id for s in batch.samples])

    samples = {
        "sample_index": batch.indices,
        "sample_id": [s.id for s in batch.samples],
        "source": [s.source for s in batch.samples],
        "part": [part] * len(indices),
        "offset": list(range(len(indices))),
        "gt_labels": [list(g) for g in gts],
        "probs": [p.astype(np.float32).tolist() for p in probs],
        "boxes": [[[b.label, *b.as_list()] for b in bx] for bx in batch.boxes],
        "height": [size[0]] * len(indices),
        "width": [size[1]] * len(indices),
    }
    rows = [(i, r) for i, labs in enumerate(chosen) for r in labs]
    t0 = time.perf_counter()
    with watch.watch("uncertainty"):
        unc = uncertainty_of(ctx, part, pixels, probs)
    _add_time(ctx, "analysis_s", "uncertainty", t0, unc is not None)
    labels = {
        "sample_index": [batch.indices[i] for i, _ in rows],
        "label": [r.label for _, r in rows],
        "prob": [r.prob for _, r in rows],
        "tag": [r.tag for _, r in rows],
        "is_gt": [r.is_gt for _, r in rows],
        "is_pred": [r.is_pred for _, r in rows],
        "in_top_k": [r.in_top_k for _, r in rows],
        "part": [part] * len(rows),
        "map_offset": list(range(len(rows))),
    }
    if unc is not None:
        for col, arr in (("prob_mean", unc.mean), ("prob_std", unc.std), ("ci_low", unc.lo), ("ci_high", unc.hi)):
            labels[col] = [float(arr[i, r.label]) for i, r in rows]
    pair_img = torch.as_tensor([i for i, _ in rows], dtype=torch.long)
    # Moved to the model's device once, not by each of the explainers × metrics contexts.
    pair_tgt = to_device(torch.as_tensor([r.label for _, r in rows], dtype=torch.long), pixels.device)
    top = to_device(torch.as_tensor(probs.argmax(1)), pixels.device)  # label-agnostic metrics' targets
    pair_x = pixels[pair_img] if rows else pixels[:0]
    # The batch's probabilities, computed once above: metrics that start from p(x) reuse them
    # instead of pushing every pair through the model again.
    pair_probs = probs_t[pair_img]
    masks, has_mask = _pair_masks(batch, rows, size)
    is_gt = np.array([r.is_gt for _, r in rows], dtype=bool)

    def evaluate(met, maps, explain_fn):
        """(raw values, their sample indices, their labels) of one metric on one explainer's maps."""
        if met.label_agnostic:
            # a sampled run weighs only the images it explained
            seen = slice(None) if ctx.sample is None else [i for i, labs in enumerate(chosen) if labs]
            mctx = MetricContext(ctx.model, pixels[seen], top[seen], None,
                                 explain=explain_fn, batch_size=bs, seed=cfg.seed,
                                 probs=probs_t[seen])
            return (np.asarray(met.evaluate(mctx), dtype=np.float64), np.asarray(batch.indices)[seen].tolist(),
                    [-1] * len(mctx))
        mctx = MetricContext(ctx.model, pair_x, pair_tgt, maps, masks=masks, has_mask=has_mask,
                             is_ground_truth=is_gt, explain=explain_fn,
                             batch_size=bs, seed=cfg.seed, probs=pair_probs)
        raw = np.asarray(met.evaluate(mctx), dtype=np.float64) if rows else np.zeros(0)
        return raw, labels["sample_index"], labels["label"]

    scores = {k: [] for k in ("sample_index", "label", "explainer", "metric", "raw", "score", "nan_reason")}
    saliency = {}
    details = {k: [] for k in ("sample_index", "label", "explainer", "key", "value")}
    for exp in ctx.explainers:
        t0 = time.perf_counter()
        with watch.watch(f"explainer {exp.instance_name}") as explained:
            grouped = exp.explain_grouped(ctx.model, pixels, [[r.label for r in labs] for labs in chosen],
                                          batch_size=bs)
        maps = to_host(torch.cat(grouped)) if grouped else torch.zeros(0, *size)
        ctx.stats["explain_s"][exp.instance_name] = ctx.stats["explain_s"].get(exp.instance_name, 0.0) + time.perf_counter() - t0
        saliency[exp.instance_name] = maps.numpy().astype(np.float32)
        per_map = dict(exp.pair_diagnostics(len(rows)))  # e.g. anchor precision, IG completeness
        # Measured sign, per map: what `signed` in the manifest is finally made of (FORMAT.md).
        per_map["has_negative"] = (maps.reshape(len(rows), -1) < 0).any(dim=1).double() if rows else torch.zeros(0)
        for key, vals in per_map.items():
            details["sample_index"] += labels["sample_index"]
            details["label"] += labels["label"]
            details["explainer"] += [exp.instance_name] * len(rows)
            details["key"] += [key] * len(rows)
            details["value"] += vals.tolist()

        def explain_fn(x, t, _exp=exp):
            return _exp.explain(ctx.model, x, t, batch_size=bs)

        for met in ctx.metrics:
            t0 = time.perf_counter()
            with watch.watch(f"metric {met.instance_name} of {exp.instance_name}") as measured:
                raw, idx, labs = evaluate(met, maps, explain_fn)
            ctx.stats["metric_s"][met.instance_name] = ctx.stats["metric_s"].get(met.instance_name, 0.0) + time.perf_counter() - t0
            norm = met.normalise(raw)
            # NaN where the metric does not apply, or (with a reason) where the model's outputs were not finite.
            why = combine(explained.reason, measured.reason)
            scores["sample_index"] += list(idx)
            scores["label"] += list(labs)
            scores["explainer"] += [exp.instance_name] * len(raw)
            scores["metric"] += [met.instance_name] * len(raw)
            scores["raw"] += raw.tolist()
            scores["score"] += norm.tolist()
            scores["nan_reason"] += [why if why and not np.isfinite(v) else None for v in raw.tolist()]

    t0 = time.perf_counter()
    with watch.watch("counterfactual"):
        counterfactuals = counterfactuals_of(ctx, batch, pixels, chosen, probs)
    _add_time(ctx, "analysis_s", "counterfactual", t0, counterfactuals is not None)
    return {"samples": samples, "labels": labels, "scores": scores, "images": batch.display,
            "saliency": saliency, "counterfactuals": counterfactuals,
            "details": details if details["key"] else None,
            # The object masks the localisation metrics scored against, so they can be
            # recomputed from the run directory alone (xai_core/recompute.py).
            "masks": masks, "has_mask": has_mask,
            "backend": part_backend(ctx, watch, passes0, fast0)}


def part_backend(ctx: RunContext, watch: PassWatch, passes0: int, fast0: int) -> dict:
    """What computed a part (its commit record's ``backend``): ``forward``, the backend of its
    gradient-free passes (``torch``; ``onnxruntime``, the fast path; ``onnx``; a server),
    ``passes`` and ``fast_passes`` (of them through ONNX Runtime's fast path) and, when some
    passes returned non-finite outputs, ``nonfinite`` {evaluation: [passes, of passes]}."""
    out = {"forward": getattr(ctx.model, "backend", "torch"), "passes": int(ctx.model.passes) - passes0,
           "fast_passes": ctx.fast_passes - fast0}
    if (ctx.fast_forward or {}).get("fallback"):  # the recorded fast path could not be rebuilt here
        out["reason"] = ctx.fast_forward["fallback"]
    if watch.seen:
        out["nonfinite"] = dict(watch.seen)
    return out


def _add_time(ctx: RunContext, kind: str, name: str, t0: float, ran: bool = True) -> None:
    if ran:
        ctx.stats[kind][name] = ctx.stats[kind].get(name, 0.0) + time.perf_counter() - t0


def _pair_masks(batch, rows, size):
    if not rows:
        return None, None
    masks = np.zeros((len(rows), *size), dtype=bool)
    has = np.zeros(len(rows), dtype=bool)
    for j, (i, r) in enumerate(rows):
        m = object_mask(batch.boxes[i], batch.masks[i], r.label, size)
        if m is not None:
            masks[j], has[j] = m, True
    return masks, has


def sanity_checks(ctx: RunContext, progress=None) -> dict | None:
    """Cascading-randomisation check of every explainer on the first ``sanity.images`` items,
    explaining each image's top class; stored in the manifest under ``sanity``. ``progress``:
    a :class:`~xai_core.progress.RunProgress` for its bar (explainers × images)."""
    spec = ctx.config.sanity
    if not spec.enabled:
        return None
    from .sanity import randomisation_check

    n = min(spec.images, len(ctx.dataset))
    pixels = to_device(load_part(ctx, list(range(n))).pixels, model_device(ctx.model))
    targets = ctx.model.predict(pixels).argmax(dim=1)
    out = {}
    bar, step = (None, None) if progress is None else progress.sanity_bar([e.instance_name for e in ctx.explainers], n)
    try:
        for i, exp in enumerate(ctx.explainers):
            if step is not None:
                step(i, 0, 1)
            seed_everything(ctx.config.seed)
            out[exp.instance_name] = randomisation_check(
                ctx.model, exp, pixels, targets, seed=ctx.config.seed, batch_size=ctx.batch_size, max_steps=spec.steps,
                progress=None if step is None else (lambda done, total, _i=i: step(_i, done, total)))
    finally:
        if bar is not None:
            bar.close()
    return out
