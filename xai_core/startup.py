"""What a run decides once, when it starts, before its first part: the explain batch size
(``explain_batch_size: auto``, probed on a GPU) and how its gradient-free passes run
(``model.fast_forward``). :class:`~.engine.RunContext.build` calls both."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from .config import RunConfig
from .data import prepare_batch
from .devices import to_device
from .errors import XaiError
from .models.batching import CPU_BATCH, probe_batch


def _sample_images(model, config: RunConfig, dataset) -> torch.Tensor:
    """Up to 8 of the run's first images (host pixels) for the start-up probes; random ones
    when they cannot be read (a bad image fails its own part later, with the manifest written)."""
    size = tuple(config.model.input_size)
    n = min(len(dataset), 8)
    try:
        images = prepare_batch(dataset, list(range(n)), size, channels=model.channels,
                               resize=config.dataset.resize).pixels if n else None
    except XaiError:
        images = None
    if images is None:
        images = torch.rand(4, model.channels, *size, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    return images


def explain_batch(model, config: RunConfig, dataset) -> int:
    """``explain_batch_size`` as a number: as configured; ``auto`` is 64 on the CPU (every
    run's batch before devices existed) and, on a GPU, the largest forward batch that fits
    and still pays (:func:`.models.batching.probe_batch`, recorded in the manifest)."""
    if config.explain_batch_size != "auto":
        return int(config.explain_batch_size)
    device = getattr(model, "device", None)
    if device is None or device.type == "cpu" or getattr(model, "batches", None) is None:
        return CPU_BATCH
    images = to_device(_sample_images(model, config, dataset), device)
    batch, record = probe_batch(model._forward_only, images, device)
    model.batches.probe = record
    return batch


def decide_fast_forward(model, config: RunConfig, dataset, explainers, metrics, *, batch_size: int,
                        decided: dict | None = None, progress=None):
    """(model, manifest record) for ``model.fast_forward`` (see :mod:`.models.fast`).

    A run decides once, when it starts: ``decided`` (a record of that decision) is followed
    as it is — torch stays torch, and an ``onnxruntime`` decision exports the recorded variant
    again without timing it. Without one, ``auto`` first estimates the run's gradient-free
    passes and skips the probe when they are too few to repay it. ``batch_size``: the run's
    resolved ``explain_batch_size``."""
    if not model.supports_gradients:
        return model, {"mode": config.model.fast_forward, "backend": model.kind,
                       "reason": f"the model itself is served by {model.kind}"}
    mode = config.model.fast_forward
    if mode == "off":
        return model, {"mode": "off", "backend": "torch"}
    if model.device.type != "cpu":  # ONNX Runtime runs here on its CPU provider
        return model, {"mode": mode, "backend": "torch",
                       "reason": f"the model runs on {model.device}: ONNX Runtime's CPU provider is no match for it"}
    if model.precision != "fp32":
        return model, {"mode": mode, "backend": "torch",
                       "reason": f"model.precision is {model.precision}: forward passes run under torch autocast"}
    from .models import fast as ff

    if decided is not None and decided.get("backend") in ("torch", "onnxruntime"):
        if decided["backend"] == "torch":
            return model, decided
        handle, why = ff.reuse_fast_forward(model, _sample_images(model, config, dataset), decided,
                                            batch_size=batch_size)
        # The recorded decision stays the run's; the parts record what computed them (and why).
        return handle, (decided if why is None else {**decided, "fallback": why})
    record = {}
    if mode == "auto":
        unc, cf = config.uncertainty, config.counterfactual
        per_label = config.labels.top_k_for(config.model.activation) or 1
        extra = (unc.passes if unc.enabled and unc.dropout == 0 else 0) + (100 * per_label if cf.enabled else 0)
        estimate = ff.estimate_forward_passes(explainers, metrics, n_items=len(dataset), labels_per_image=per_label,
                                              size=tuple(config.model.input_size), extra_per_image=extra)
        record = {"estimated_passes": estimate}
        if estimate < ff.MIN_PASSES:
            info = {"mode": "auto", "backend": "torch", **record, "setup_s": 0.0,
                    "reason": f"the run makes about {estimate:,} gradient-free passes, too few to repay "
                              f"the export and its probe (auto probes from {ff.MIN_PASSES:,})"}
            if progress is not None:
                progress.line(f"fast path: staying on torch ({info['reason']})")
            return model, info
    images = _sample_images(model, config, dataset)
    with _probe_lines(progress) as done:
        fast, info = ff.enable_fast_forward(model, images, batch_size=batch_size,
                                            require_speedup=mode == "auto")
        done["done"] = "fast path: " + (f"ONNX Runtime serves the forward-only passes ({info.get('export')} export, "
                                        f"max |logit difference| {info.get('max_abs_diff'):.2g})"
                                        if info.get("backend") == "onnxruntime" else
                                        f"staying on torch ({info.get('reason', 'no exact export')})") + "; probe {s}"
    info.update(mode=mode, **record)
    return fast, info


def _probe_lines(progress):
    if progress is None:
        return nullcontext({})
    return progress.timed_line("fast path: exporting the model to ONNX and comparing it with torch on probe "
                               "images (a one-off check at setup)…")
