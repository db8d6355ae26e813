"""Prediction uncertainty by Monte-Carlo dropout (optionally with test-time augmentation).

Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016 (arXiv:1506.02142): keeping
dropout active at test time and averaging T stochastic passes approximates the predictive
distribution; the spread of the T probabilities is the model's (epistemic) uncertainty.
MindSpore's ``register_uncertainty`` does the same with T = 10 and inserts a dropout layer
when the network has none (ANCHORS.md §4).

Two functions:

* :func:`mc_dropout` → :class:`UncertaintyResult` (deterministic probability, MC mean, MC
  standard deviation and a Beta interval per image and class), all passes batched.
* :func:`beta_interval` → the central interval of a Beta distribution fitted by moments,
  vectorised and safe at the edges.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .devices import model_device, to_device, to_host
from .errors import ModelError

# Below this the standard deviation is treated as zero: float32 probabilities cannot resolve
# a smaller spread, and Beta parameters ~ 1/var would overflow.
_STD_EPS = 1e-6
# Probabilities are clipped to [eps, 1 - eps] before fitting, so α, β > 0 at p ∈ {0, 1}.
_P_EPS = 1e-6


@dataclass(frozen=True)
class UncertaintyResult:
    """MC-dropout statistics for N images and K classes; every array is (N, K) float32.

    prob: deterministic probability (dropout off, no augmentation), what the model reports.
    mean, std: mean and standard deviation (ddof = 0) of the ``passes`` stochastic
        probabilities.
    lo, hi: the central ``level`` interval of a Beta distribution fitted by moments to
        (mean, std) — see :func:`beta_interval` for why around the MC mean.
    passes: stochastic passes per image. model_passes: images pushed through the network by
        the call (``passes · N``, plus ``N`` when ``prob`` was not given).
    dropout: where the stochasticity came from: ``"existing"`` (the network's own dropout
        layers, at their trained rates), ``"inserted before <layer>"`` or ``"none"`` (pure
        test-time augmentation).
    """

    prob: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float
    passes: int
    model_passes: int
    dropout: str


def beta_interval(mean, std, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` interval of Beta(α, β) with the given mean and standard deviation.

    Method of moments: with m the mean and v = std², α = m·c, β = (1 − m)·c where
    c = m(1 − m)/v − 1. Vectorised over any broadcastable shapes; returns float64 (lo, hi)
    with lo ≤ hi in [0, 1].

    Edge cases, handled without NaN:
      * std ≤ 1e-6 (no measurable spread) → the degenerate interval [m, m];
      * m at 0 or 1 → clipped to [1e-6, 1 − 1e-6] so that α, β > 0;
      * v ≥ m(1 − m) (no Beta has these moments: only a two-point law at {0, 1} reaches
        v = m(1 − m)) → v is lowered to 0.999·m(1 − m), a near two-point Beta whose interval
        is then wide. With m the sample mean of values in [0, 1] this cannot happen
        (Bhatia–Davis: v ≤ m(1 − m)); with m the deterministic probability it can, which is
        why :func:`mc_dropout` fits around the MC mean.
    """
    from scipy.stats import beta as beta_dist

    m = np.clip(np.asarray(mean, dtype=np.float64), 0.0, 1.0)
    s = np.maximum(np.asarray(std, dtype=np.float64), 0.0)
    m, s = np.broadcast_arrays(m, s)
    mc = np.clip(m, _P_EPS, 1.0 - _P_EPS)
    var = np.minimum(s**2, 0.999 * mc * (1.0 - mc))
    spread = s > _STD_EPS
    c = np.where(spread, mc * (1.0 - mc) / np.where(spread, var, 1.0) - 1.0, 1.0)
    a, b = mc * c, (1.0 - mc) * c
    lo, hi = beta_dist.interval(level, np.where(spread, a, 1.0), np.where(spread, b, 1.0))
    lo = np.where(spread, lo, m)
    hi = np.where(spread, hi, m)
    return np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)


def _dropout_modules(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


def _head_layer(model, x: torch.Tensor) -> tuple[str, nn.Module]:
    """The module dropout is inserted before: the last ``nn.Linear`` in execution order (the
    classifier head, where MC dropout is classically applied), else the last leaf module to
    run (e.g. the global pool of an all-convolutional net). Found by one hooked pass on
    ``x`` (1 image), so it follows the real data flow, not the attribute order."""
    order: list[nn.Module] = []
    leaves = [m for m in model.net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod)) for m in leaves]
    try:
        with torch.no_grad():
            model.logits(x)
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ModelError(
            "uncertainty: no layer of the network ran (a TorchScript model?), so dropout cannot be "
            "inserted; use a model with dropout layers or test-time augmentation (dropout=0)"
        )
    linears = [m for m in order if isinstance(m, nn.Linear)]
    mod = linears[-1] if linears else order[-1]
    names = {m: n for n, m in model.net.named_modules()}
    return names.get(mod, type(mod).__name__), mod


@contextmanager
def _stochastic(model, x1: torch.Tensor, rate: float):
    """Dropout on for the duration, restored afterwards; yields a description.

    Only the dropout modules are switched to train mode — never the whole network, which
    would make BatchNorm use (and update!) batch statistics. Without dropout modules, a
    forward pre-hook applies ``F.dropout(training=True)`` to the head layer's input.
    """
    forward_only = not getattr(model, "supports_gradients", True)
    if forward_only and rate > 0:
        raise ModelError(f"uncertainty: dropout needs the PyTorch module, which a model served by {model.kind} lacks; "
                         "use dropout=0 with tta_shift / tta_noise (test-time augmentation)")
    # A forward-only model (ONNX, served) has no layers to switch: augmentation only.
    existing = [] if forward_only else _dropout_modules(model.net)
    handle, modes = None, [(m, m.training) for m in existing]
    if existing:
        desc = "existing"
        for m in existing:
            m.train(True)
    elif rate > 0:
        name, layer = _head_layer(model, x1)
        desc = f"inserted before {name}"

        def pre_hook(_m, args):
            return (F.dropout(args[0], p=rate, training=True), *args[1:])

        handle = layer.register_forward_pre_hook(pre_hook)
    else:
        desc = "none"
    try:
        yield desc
    finally:
        for m, mode in modes:
            m.train(mode)
        if handle is not None:
            handle.remove()


def _augment(x: torch.Tensor, shift: int, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to ``shift`` px (edge pixels replicated) and Gaussian pixel
    noise σ = ``noise``, independently per image; both label-preserving for most tasks
    (flips are not: they turn a "2" into a "5"-like shape)."""
    if shift > 0:
        n, _, h, w = x.shape
        pad = F.pad(x, (shift, shift, shift, shift), mode="replicate")
        off = torch.randint(0, 2 * shift + 1, (n, 2), generator=gen)  # host draws: host offsets
        x = torch.stack([pad[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(off.tolist())])
    if noise > 0:
        x = (x + noise * to_device(torch.randn(x.shape, generator=gen), x.device)).clamp(0.0, 1.0)
    return x


@torch.no_grad()
def mc_dropout(model, images: torch.Tensor, *, passes: int = 10, dropout: float = 0.1,
               tta_shift: int = 0, tta_noise: float = 0.0, seed: int = 0, batch_size: int = 64,
               probs: torch.Tensor | np.ndarray | None = None, level: float = 0.95) -> UncertaintyResult:
    """MC-dropout prediction uncertainty of every class of every image.

    model: :class:`~xai_core.models.ClassifierHandle`; images: (N, 3, H, W) float32 in [0, 1].
    passes: stochastic passes per image (MindSpore: 10). dropout: rate of the dropout inserted
    before the head layer when the network has no dropout of its own (existing dropout layers
    keep their trained rates); 0 inserts none, leaving only test-time augmentation.
    tta_shift (px) / tta_noise (σ): optional test-time augmentation, drawn afresh per pass.
    probs: (N, K) deterministic probabilities if the caller already has them (saves N passes).

    The N·passes stochastic images are processed in chunks of ``batch_size`` (each image
    replicated ``passes`` times, so one chunk mixes passes and images). Deterministic for a
    given (seed, batch_size): the global RNG is forked, seeded and restored, so the caller's
    random stream is untouched. The model is left exactly as it was: modes, hooks, weights,
    BatchNorm statistics.

    Cost per image: ``passes`` forward passes (+1 without ``probs``, +1 per call to locate the
    head layer when dropout is inserted).
    """
    if passes < 2:
        raise ModelError(f"uncertainty: passes is {passes}; expected ≥ 2 (a spread needs two samples)")
    if not 0.0 <= dropout < 1.0:
        raise ModelError(f"uncertainty: dropout is {dropout}; expected 0 ≤ dropout < 1")
    n = int(images.shape[0])
    k = model.num_classes
    start = model.passes
    images = to_device(images, model_device(model))
    if probs is None:
        det = model.predict(images, batch_size=batch_size)
    else:
        det = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
    if n == 0:
        z = np.zeros((0, k), np.float32)
        return UncertaintyResult(z, z, z, z, z, level, passes, 0, "none")

    devices = [images.device.index or 0] if images.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        with _stochastic(model, images[:1], dropout) as desc:
            if desc == "none" and tta_shift <= 0 and tta_noise <= 0:
                raise ModelError(
                    "uncertainty: nothing is random (no dropout layer, dropout=0 and no augmentation); "
                    "give dropout > 0 or tta_shift / tta_noise"
                )
            out = []
            total = n * passes
            for s in range(0, total, batch_size):
                # Index r = pass · N + image: replicate the batch without materialising it.
                idx = torch.arange(s, min(s + batch_size, total)) % n
                x = _augment(images[idx], tta_shift, tta_noise, gen)
                out.append(model.probs(x).float())  # stays on the device until the last pass
    samples = to_host(torch.cat(out)).view(passes, n, k).double()
    mean = samples.mean(0).numpy()
    std = samples.std(0, unbiased=False).numpy()
    # "Better than MindInsight" (which fits around the deterministic p): the MC mean and
    # variance of values in [0, 1] always admit a Beta fit, the deterministic p does not
    # whenever std² > p(1 − p) — exactly the confident predictions (p near 0 or 1).
    lo, hi = beta_interval(mean, std, level)
    return UncertaintyResult(prob=_f32(to_host(det).numpy()), mean=_f32(mean), std=_f32(std), lo=_f32(lo),
                             hi=_f32(hi), level=level, passes=passes, model_passes=model.passes - start,
                             dropout=desc)


def _f32(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)
