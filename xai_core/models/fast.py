"""Fast forward path: forward-only passes of a PyTorch model through ONNX Runtime.

Most passes of a run need no gradient — occlusion, RISE, LIME, KernelSHAP and anchors
explanations, the deletion/insertion curves, counterfactual searches, the batch's own
predictions — and ONNX Runtime runs a small CNN's forward pass about three times faster than
eager PyTorch on the CPU (measured on the demo CNN: BENCHMARKS.md). At run start
(``model.fast_forward: auto``) the network is exported with the TorchScript-based
exporter and kept only if the export is *exact*: on a probe batch made from the run's own
images and the kinds of perturbation the methods apply, at every batch size the run uses,
the logits of both runtimes differ by at most :data:`TOLERANCE`. Otherwise the run stays on
torch, and the manifest says why.

A pass still goes through torch whenever it could differ from the export or needs what only
torch gives: an input that requires grad (gradient explainers, Captum), a network with a
module in training mode (MC dropout switches dropout on) or with forward hooks on any of its
layers (Grad-CAM's activations, the uncertainty head search, guided backprop's rules), weights
changed in place since the export, or an empty, non-float32 or non-CPU batch. Hooks on the pixel-space wrapper itself are ignored:
only the user's layers carry computation that hooks could observe or change.
"""

from __future__ import annotations

import io
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .handle import ClassifierHandle

TOLERANCE = 1e-5  # max |logit difference| for the export to count as exact
# "auto" keeps the export only if it is also faster: ONNX Runtime's best time per image on the
# probe below this share of torch's (a quiet 2-core machine measured the demo CNN at parity).
SPEEDUP_NEEDED = 0.9
OPSET = 17
# Distinct probe images (the run's own and perturbed copies). The largest batch size is checked
# on these repeated, so the probe costs about the same whatever the run's batch size.
PROBE_IMAGES = 16
# "auto" skips the export and the probe when the run's gradient-free passes are estimated
# below this (:func:`estimate_forward_passes`): on a 2-core machine the probe of the demo CNN
# took 0.2 s quiet and 4-8 s loaded, more than ONNX Runtime saves on a few thousand passes.
MIN_PASSES = 5_000


@dataclass
class FastForwardHandle(ClassifierHandle):
    """A :class:`ClassifierHandle` whose gradient-free passes run in an ONNX Runtime session.

    ``fast_passes`` counts the images that went through ONNX Runtime (they are counted in
    ``passes`` as well).
    """

    exported: Any = None  # an :class:`Exported`
    info: dict = field(default_factory=dict)
    fast_passes: int = 0
    backend = "onnxruntime"

    def __post_init__(self):
        super().__post_init__()
        self._layers = list(self.module.net.modules())
        self._tensors = [*self.module.parameters(), *self.module.buffers()]
        self._exported = self._state_version()

    def _state_version(self) -> int:
        # Every in-place change of a tensor bumps its version counter: weights edited after
        # the export (a randomisation, a fine-tuning step) show up here.
        return sum(t._version for t in self._tensors)

    def needs_torch(self, x: torch.Tensor) -> bool:
        """True when ``x`` must go through torch (see the module docstring)."""
        if x.requires_grad or x.shape[0] == 0 or x.dtype != torch.float32 or x.device.type != "cpu":
            return True
        if self.module.training or self._state_version() != self._exported:
            return True
        return any(m.training or m._forward_hooks or m._forward_pre_hooks for m in self._layers)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.needs_torch(x):
            return super().logits(x)
        n = int(x.shape[0])
        self.passes += n
        self.fast_passes += n
        return self._counted(torch.from_numpy(self.exported(x.detach().contiguous().numpy())))


def _has_hooks(modules) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


class Exported:
    """The user's network in an ONNX Runtime session, behind the pixel-space normalisation.

    The network is exported alone (a TorchScript network cannot be traced inside a Python
    wrapper) and ``(x − mean) / std`` is applied in numpy: the same float32 operations as
    :class:`~.handle.PixelSpaceModel`, so the same bits."""

    def __init__(self, session, mean: torch.Tensor, std: torch.Tensor):
        self.session = session
        self.name = session.get_inputs()[0].name
        self.mean = mean.detach().to(torch.float32).numpy().copy()
        self.std = std.detach().to(torch.float32).numpy().copy()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.name: (x - self.mean) / self.std})[0]


# Export variants (name, fold BatchNorm into convolutions, ONNX Runtime graph optimisations),
# tried in this order until one is exact. The exporter folds each eval-mode BatchNorm into the
# convolution before it (fewer operators), which rounds the weights once; unfolded, ONNX
# Runtime computes BatchNorm as torch does: slower, closer. ONNX Runtime's own rewrites
# (fusions, blocked layouts) are left off: on the demo CNN they made a pass about 25 % faster
# but moved the logits to 8.6e-6 of torch's (6.2e-6 without) and one map-only score of the
# runner benchmark to 1.05e-5 of the torch-only run, past the 1e-5 the fast path promises.
VARIANTS = (("folded", True, False), ("unfolded", False, False))


@contextmanager
def _quiet_stdio():
    """Silence the C++ side of the exporter: on an unsupported operator it prints the whole
    TorchScript graph to the process's stderr (torch 2.13 turns its ONNX log on whatever the
    setting), before the exception the fast path turns into a one-line reason."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no standard streams (a daemon): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def export(module, pixels: torch.Tensor, *, fold: bool = True, optimize: bool = True) -> Exported:
    """The network of ``module`` (a :class:`~.handle.PixelSpaceModel`) exported with a
    dynamic batch axis, traced on ``pixels`` (N, C, H, W) in [0, 1]."""
    from .onnx import cpu_session

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), _quiet_stdio():
        warnings.simplefilter("ignore")  # the legacy exporter announces its deprecation
        example = (pixels - module.mean) / module.std
        torch.onnx.export(module.net, (example,), buf, dynamo=False, opset_version=OPSET,
                          do_constant_folding=fold, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}})
    return Exported(cpu_session(buf.getvalue(), optimize=optimize), module.mean, module.std)


def probe_images(images: torch.Tensor, n: int, *, seed: int = 0) -> torch.Tensor:
    """(n, C, H, W) inputs like those a run feeds the model: its images, copies with random
    8×8-cell regions set to black (occlusion, anchors, LIME, deletion), blurred copies with
    regions of the original pasted back (insertion, counterfactuals), and a black image."""
    from ..blur import gaussian_blur

    gen = torch.Generator().manual_seed(seed)
    c, h, w = images.shape[1:]
    blurred = gaussian_blur(images, sigma=max(h, w) / 16)
    out = [images, torch.zeros(1, c, h, w)]
    while sum(t.shape[0] for t in out) < n:
        cells = torch.rand(images.shape[0], 1, (h + 7) // 8, (w + 7) // 8, generator=gen) < 0.5
        mask = cells.repeat_interleave(8, 2).repeat_interleave(8, 3)[:, :, :h, :w].float()
        out += [images * mask, images * mask + blurred * (1 - mask)]
    return torch.cat(out)[:n].contiguous()


class ProbeFailed(Exception):
    """The torch model or its export raised on a probe batch (``side``: "torch" or "export")."""

    def __init__(self, side: str, batch: int, error: Exception):
        text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        super().__init__(f"{type(error).__name__}: {text}".rstrip(": "))
        self.side, self.batch = side, batch


def _run_side(side: str, fn, x):
    try:
        return fn(x)
    except Exception as e:  # the user's forward or ONNX Runtime, at a batch size they may not take
        raise ProbeFailed(side, int(x.shape[0]), e) from e


def max_logit_diff(module, exported: Exported, probe: torch.Tensor, batch_sizes, *, small: int = 12) -> float:
    """Max |torch − ORT logits| over ``probe`` cut in batches of each of ``batch_sizes``
    (inf when the shapes differ, NaN when either side gives NaN). Batch sizes below
    ``small`` see only the first ``small`` images; a size above the probe's length sees the
    probe repeated to that size. :class:`ProbeFailed` when either side raises."""
    worst = 0.0
    with torch.no_grad():
        for b in batch_sizes:
            images = probe if b >= small else probe[:small]
            if b > images.shape[0]:
                images = images.repeat((b + images.shape[0] - 1) // images.shape[0], 1, 1, 1)[:b]
            for i in range(0, images.shape[0], b):
                x = images[i: i + b].contiguous()
                ref = _run_side("torch", module, x).numpy()
                out = _run_side("export", lambda t: exported(t.numpy()), x)
                if out.shape != ref.shape:
                    return float("inf")
                d = float(np.abs(out.astype(np.float64) - ref).max())
                if not d <= worst:  # keeps a NaN
                    worst = d
    return worst


def time_per_image(fn, x, repeats: int = 3) -> float:
    """Best wall time of ``fn(x)`` over ``repeats`` calls, in ms per image (after one warm-up)."""
    fn(x)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / max(int(x.shape[0]), 1)


def compare_speed(module, exported: "Exported", probe: torch.Tensor) -> tuple[float, float]:
    """(torch ms/img, ONNX Runtime ms/img) on the whole probe in one batch, best of 3 each."""
    with torch.no_grad():
        t_torch = time_per_image(lambda x: _run_side("torch", module, x), probe)
    t_ort = time_per_image(lambda x: _run_side("export", lambda t: exported(t.numpy()), x), probe)
    return round(t_torch, 4), round(t_ort, 4)


def _failed(e: ProbeFailed) -> str:
    """The manifest's reason for keeping torch after :class:`ProbeFailed`."""
    if e.side == "torch":
        return (f"the model raised {e} on a probe batch of {e.batch} image(s); kept torch (a part that feeds it "
                "such a batch fails with this error)")
    return f"the export raised {e} on a probe batch of {e.batch} image(s); kept torch"


def estimate_forward_passes(explainers, metrics, *, n_items: int, labels_per_image: int, size, extra_per_image: int = 0) -> int:
    """A rough count of the gradient-free passes a run makes (what the fast path could serve):
    the batch's predictions, and per explained label the forward-only explainers' passes
    (their ``masks``/``samples``/``max_passes``, occlusion's windows) and the activation
    metrics' (``steps``, ``fractions``, ``samples``, or 50) per explainer, times the explainer's
    passes again for metrics that re-explain. Gradient passes are not counted: torch runs them."""
    h, w = size

    def explainer(e) -> int:
        if e.needs_gradients:
            return 0
        p = e.params
        for key in ("masks", "samples", "max_passes"):
            if isinstance(getattr(p, key, None), int):
                return int(getattr(p, key))
        if hasattr(e, "geometry"):  # occlusion: one pass per window
            win, stride = e.geometry(h, w)
            return (max(h - win, 0) // max(stride, 1) + 2) * (max(w - win, 0) // max(stride, 1) + 2)
        return 0

    def metric(m, e) -> int:
        p = m.params
        n = next((len(v) if isinstance(v, (tuple, list)) else int(v) for key in ("steps", "fractions", "samples")
                  if isinstance(v := getattr(p, key, None), (int, tuple, list)) and not isinstance(v, bool)), 50)
        if "explainer" in m.needs:
            return n * (explainer(e) + 1)
        return n if "activation" in m.needs else 0

    per_label = sum(explainer(e) + sum(metric(m, e) for m in metrics) for e in explainers)
    return int(n_items * (1 + extra_per_image + labels_per_image * per_label))


def enable_fast_forward(handle: ClassifierHandle, images: torch.Tensor, *, batch_size: int,
                        tolerance: float = TOLERANCE, require_speedup: bool = True) -> tuple[ClassifierHandle, dict]:
    """(the handle to run with, what was decided) for ``model.fast_forward: auto``.

    images: (N, C, H, W) float32 in [0, 1], a few of the run's images (N ≥ 1); batch_size: the
    largest forward batch of the run (``explain_batch_size``). The probe is ``batch_size``
    images, compared in batches of that size, and its first 12 one by one and in odd chunks
    of 3, since a runtime's numerics may depend on the batch size (kernels are chosen and
    blocked per shape).
    Returns the original handle with ``backend: torch`` and the reason when the export fails
    or no variant is exact, or (``require_speedup``, mode ``auto``) when ONNX Runtime is not
    faster than torch on the probe here (``ms_per_image`` records both).
    """
    info = {"mode": "auto", "backend": "torch", "tolerance": tolerance, "max_abs_diff": None}
    if _has_hooks(handle.module.net.modules()):  # every pass would go through torch anyway (see needs_torch)
        info.update(reason="the network has forward hooks, which only torch runs", setup_s=0.0)
        return handle, info
    t0 = time.perf_counter()
    probe = probe_images(images, min(max(batch_size, 4), PROBE_IMAGES))
    sizes = sorted({1, 3, max(batch_size, 4)})
    info.update(probe_images=int(probe.shape[0]), probe_batch_sizes=sizes)
    tried = []
    for variant, fold, optimize in VARIANTS:
        try:
            exported = export(handle.module, images[:1], fold=fold, optimize=optimize)
        except Exception as e:  # the exporter raises many types (unsupported op, tracing failure)
            text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            info.update(reason=f"ONNX export failed: {type(e).__name__}: {text}".rstrip(": "),
                        setup_s=round(time.perf_counter() - t0, 3))
            return handle, info  # an unexportable model fails the same way in every variant
        try:
            diff = max_logit_diff(handle.module, exported, probe, sizes)
            timings = compare_speed(handle.module, exported, probe) if diff <= tolerance else None
        except ProbeFailed as e:
            info.update(reason=_failed(e), setup_s=round(time.perf_counter() - t0, 3))
            return handle, info
        tried.append(f"{variant} {diff:.3g}")
        info["max_abs_diff"] = diff if info["max_abs_diff"] is None else min(info["max_abs_diff"], diff)
        if diff <= tolerance:
            t_torch, t_ort = timings
            info.update(export=variant, max_abs_diff=diff, ms_per_image={"torch": t_torch, "onnxruntime": t_ort})
            if require_speedup and not t_ort < SPEEDUP_NEEDED * t_torch:
                info.update(reason=f"the export is exact but not faster here: {t_ort:.3g} ms/img in ONNX Runtime, "
                                   f"{t_torch:.3g} in torch (mode on uses it anyway)",
                            setup_s=round(time.perf_counter() - t0, 3))
                return handle, info
            info.update(backend="onnxruntime", setup_s=round(time.perf_counter() - t0, 3))
            return _fast_handle(handle, exported, info), info
    info.update(reason=f"the export is not exact: max |logit difference| ({', '.join(tried)}) > {tolerance:g}",
                setup_s=round(time.perf_counter() - t0, 3))
    return handle, info


def _fast_handle(handle: ClassifierHandle, exported: Exported, info: dict) -> FastForwardHandle:
    return FastForwardHandle(module=handle.module, activation=handle.activation, input_size=handle.input_size,
                             num_classes=handle.num_classes, channels=handle.channels, passes=handle.passes,
                             exported=exported, info=info)


def reuse_fast_forward(handle: ClassifierHandle, images: torch.Tensor, decided: dict, *,
                       batch_size: int) -> tuple[ClassifierHandle, str | None]:
    """(the handle to run with, None) following a recorded decision ``decided`` (the manifest's
    ``model.fast_forward``) without deciding again: ``--resume`` and Dask workers compute
    their parts with the backend the run chose when it started. An ``onnxruntime`` decision
    exports the recorded variant again and checks that it is exact here (no timing); if it is
    not (another machine, another ONNX Runtime), the handle stays on torch and the second
    element says why — each part records the backend that computed it."""
    if decided.get("backend") != "onnxruntime":
        return handle, None
    variant = decided.get("export", VARIANTS[0][0])
    fold, optimize = next(((f, o) for name, f, o in VARIANTS if name == variant), VARIANTS[0][1:])
    probe = probe_images(images, min(max(batch_size, 4), PROBE_IMAGES))
    try:
        exported = export(handle.module, images[:1], fold=fold, optimize=optimize)
        diff = max_logit_diff(handle.module, exported, probe, sorted({1, 3, max(batch_size, 4)}))
    except ProbeFailed as e:
        return handle, _failed(e)
    except Exception as e:  # the exporter's own errors
        return handle, f"the recorded export {variant!r} failed here: {type(e).__name__}"
    tolerance = float(decided.get("tolerance", TOLERANCE))
    if not diff <= tolerance:
        return handle, f"the recorded export {variant!r} is not exact here ({diff:.3g} > {tolerance:g}); kept torch"
    return _fast_handle(handle, exported, dict(decided)), None
