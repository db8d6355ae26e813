"""Model-parameter randomisation sanity check (Adebayo et al. 2018).

An explanation that is faithful to the model must change when the model's learned weights
are destroyed. Cascading randomisation re-initialises the network's parameterised layers one
after the other *from the output backwards* and recomputes the maps after each step; the
similarity to the original maps is the Spearman rank correlation of |map| (their
"absolute-value" variant), averaged over the images.

Verdict: the explainer **passes** when the mean similarity after the last step (all listed
layers randomised) is below ``threshold``; ``None`` when no image gives a defined similarity.
The default 0.5 is a heuristic: in Adebayo et al.'s cascading experiments gradient maps lose
most of their rank correlation once the network is randomised while Guided Backprop keeps
much of it, and a map that ignores the model (an edge detector) stays at 1; 0.5 sits between.

The runner calls :func:`randomisation_check` once per explainer at the end of a run on the
first few images and stores the result in the summary manifest under
``"sanity": {explainer_instance_name: result}``; the result is plain JSON (floats, strings,
lists, bool or null).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .errors import MetricError
from .metrics._stats import constant_rows, spearman_rows
from .models.handle import ClassifierHandle

DEFAULT_THRESHOLD = 0.5


def parameterised_layers(net: nn.Module, input_shape: tuple[int, ...]) -> list[str]:
    """Names (as in ``net.named_modules()``) of the modules that own parameters directly, in
    the order they run on one forward pass of a zero image (input_shape = (C, H, W)); in
    definition order where hooks are not supported (TorchScript)."""
    names = {m: n for n, m in net.named_modules()}
    owners = [m for m in net.modules() if any(True for _ in m.parameters(recurse=False))]
    seen: list[nn.Module] = []

    def hook(mod, _inp, _out):
        if mod not in seen:
            seen.append(mod)

    handles = []
    try:
        handles = [m.register_forward_hook(hook) for m in owners]
        with torch.no_grad():
            net(torch.zeros(1, *input_shape))
    except (RuntimeError, AttributeError, NotImplementedError):
        seen = list(owners)
    finally:
        for h in handles:
            h.remove()
    return [names[m] for m in seen]


def _reinitialise(module: nn.Module, gen: torch.Generator) -> None:
    """Re-initialise ``module``'s own parameters: its ``reset_parameters`` (the framework's
    initialiser; for normalisation layers this also resets the running statistics), else a
    normal draw with each parameter's own standard deviation."""
    with torch.no_grad():
        if hasattr(module, "reset_parameters"):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=gen)))
                module.reset_parameters()
            return
        for p in module.parameters(recurse=False):
            std = float(p.std()) if p.numel() > 1 else 0.0
            p.normal_(0.0, std if std > 0 else 0.02, generator=gen)


def _similarity(orig: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Spearman of |maps| per image: (N, D) × (N, D) → (N,); NaN where the original map is
    flat (nothing to compare); 0 where only the new map is flat (it lost all structure)."""
    a, b = np.abs(orig), np.abs(new)
    sim = spearman_rows(a, b)
    flat_a, flat_b = constant_rows(a), constant_rows(b)
    sim[flat_b & ~flat_a] = 0.0
    sim[flat_a] = np.nan
    return sim


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def randomisation_check(model: ClassifierHandle, explainer, images: torch.Tensor, targets, *,
                        layers: Sequence[str] | None = None, seed: int = 0,
                        threshold: float = DEFAULT_THRESHOLD, max_steps: int = 16,
                        batch_size: int = 32, progress: Callable[[int, int], None] | None = None) -> dict:
    """Cascading model-parameter randomisation of ``explainer`` on ``model``.

    model: the run's :class:`ClassifierHandle` (never modified: a deep copy is randomised);
    explainer: an :class:`~xai_core.explainers.base.Explainer` instance; images: (N, C, H, W)
    float32 in [0, 1]; targets: (N,) class indices (e.g. the top class of each image).
    layers: names in ``model.net`` to randomise, in this order, cumulatively; default every
    layer with parameters, from the output backwards. When there are more than
    ``max_steps`` layers, consecutive layers are grouped so that there are ``max_steps``
    steps (the final state — everything randomised — is the same).
    Stochastic explainers see the same global seed before every call, so their own noise
    does not pass for a change of the model. ``progress(done, total)`` is called after the
    original maps and after each randomisation step (total = steps + 1).

    Returns ``{"test", "similarity", "threshold", "seed", "n_images", "steps": [{"layers",
    "similarity"}], "final_similarity", "final_per_image", "passed", "forward_passes"}`` where
    ``similarity`` values are mean Spearman ρ of |map| over images (None when undefined).
    """
    targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if images.ndim != 4 or images.shape[0] != targets.shape[0] or images.shape[0] == 0:
        raise MetricError(f"randomisation check: images {tuple(images.shape)} and targets {tuple(targets.shape)}; "
                          "expected (N, C, H, W) and (N,) with N ≥ 1")
    if not 0 < threshold <= 1:
        raise MetricError(f"randomisation check: threshold is {threshold}; expected 0 < threshold ≤ 1")
    work = copy.deepcopy(model.module)
    handle = ClassifierHandle(module=work, activation=model.activation, input_size=tuple(model.input_size),
                              num_classes=model.num_classes)
    modules = dict(work.net.named_modules())
    if layers is None:
        names = parameterised_layers(work.net, tuple(images.shape[1:]))[::-1]
    else:
        names = list(layers)
        unknown = [n for n in names if n not in modules]
        if unknown:
            raise MetricError(f"randomisation check: layer {unknown[0]!r} is not a module of the model; "
                              "expected names from model.net.named_modules()")
    if not names:
        raise MetricError("randomisation check: the model has no layer with parameters to randomise")
    n_steps = min(len(names), max(1, max_steps))
    bounds = [round(i * len(names) / n_steps) for i in range(n_steps + 1)]
    groups = [names[bounds[i]: bounds[i + 1]] for i in range(n_steps)]

    def explain(h: ClassifierHandle) -> np.ndarray:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            maps = explainer.explain(h, images, targets, batch_size=batch_size)
        return maps.reshape(maps.shape[0], -1).double().numpy()

    report = progress or (lambda done, total: None)
    original = explain(model)
    report(1, len(groups) + 1)
    gen = torch.Generator().manual_seed(seed)
    steps, sim = [], np.full(images.shape[0], np.nan)
    for group in groups:
        for name in group:
            _reinitialise(modules[name], gen)
        sim = _similarity(original, explain(handle))
        steps.append({"layers": list(group), "similarity": _mean(sim)})
        report(len(steps) + 1, len(groups) + 1)
    final = _mean(sim)
    return {
        "test": "cascading_randomisation",
        "similarity": "spearman_abs",
        "threshold": float(threshold),
        "seed": int(seed),
        "n_images": int(images.shape[0]),
        "steps": steps,
        "final_similarity": final,
        "final_per_image": [None if not math.isfinite(v) else float(v) for v in sim],
        "passed": None if final is None else bool(final < threshold),
        "forward_passes": int(handle.passes),
    }
