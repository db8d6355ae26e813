"""The metric base class and the context a metric receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ..devices import model_device, to_device, to_host
from ..params import NoParams, build_params, params_schema

CATEGORIES = ("faithfulness", "localization", "robustness", "complexity", "sensitivity", "randomisation")
NEEDS = ("masks", "activation", "gradients", "explainer")


@dataclass
class MetricContext:
    """Everything a metric may read for a batch of P (image, label) pairs.

    images: (P, C, H, W) float32 pixels in [0, 1]; targets: (P,) int64; saliency: (P, H, W)
    float32 (the explainer's raw maps; None for label-agnostic metrics); masks: (P, H, W) bool
    object masks of the target label, with has_mask (P,) bool saying where they exist;
    is_ground_truth: (P,) bool. ``explain(images, targets) -> (P, H, W)`` recomputes maps with
    the same explainer (robustness and label-agnostic metrics need it). ``probs``: optional
    (P, K) float32 probabilities of the unperturbed images; when given, metrics that need
    p(target | x) use it instead of spending one forward pass per pair. ``seed`` seeds every
    random draw of a metric (through a private ``torch.Generator``, so the global RNG is
    neither read nor advanced).

    Devices (:mod:`xai_core.devices`): ``images``, ``targets`` and ``probs`` are moved to the
    model's device here, once; ``saliency`` (and ``masks``) live on the host, where map-only
    metrics compute. A metric that queries the model builds its inputs on the device, keeps
    the outputs there while its passes run and brings them back once (``to_host``), as the
    explainers do (rules in :class:`~xai_core.explainers.base.Explainer`).
    """

    model: Any
    images: torch.Tensor
    targets: torch.Tensor
    saliency: torch.Tensor | None
    masks: np.ndarray | None = None
    has_mask: np.ndarray | None = None
    is_ground_truth: np.ndarray | None = None
    explain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    batch_size: int = 64
    seed: int = 0
    probs: torch.Tensor | None = None

    def __post_init__(self):
        device = model_device(self.model)
        self.images = to_device(self.images, device)
        self.targets = to_device(torch.as_tensor(self.targets, dtype=torch.long), device)
        if self.probs is not None:
            self.probs = to_device(torch.as_tensor(self.probs), device)
        if self.saliency is not None:
            self.saliency = to_host(self.saliency)

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def host_images(self) -> torch.Tensor:
        """``images`` on the host, copied once (for host algorithms: ROAD's sparse solves)."""
        if getattr(self, "_host_images", None) is None:
            self._host_images = to_host(self.images)
        return self._host_images

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``seed + offset``; it draws the same numbers as the
        global RNG after ``torch.manual_seed(seed + offset)`` (the captum agreement tests
        rely on this)."""
        return torch.Generator().manual_seed(int(self.seed) + offset)

    def localisable(self) -> np.ndarray:
        """(P,) bool: pairs that have an object mask *and* are a ground-truth label; the
        localisation metrics are NaN elsewhere."""
        if self.masks is None or self.has_mask is None:
            return np.zeros(len(self), dtype=bool)
        gt = np.ones(len(self), dtype=bool) if self.is_ground_truth is None else np.asarray(self.is_ground_truth, bool)
        return np.asarray(self.has_mask, bool) & gt


class Metric:
    """Base class of every evaluation metric.

    Class-level metadata: ``name``, ``display_name``, ``category`` (one of CATEGORIES),
    ``higher_is_better``, ``value_range`` (lo, hi) of the raw value (``inf`` where unbounded),
    ``needs`` (subset of NEEDS), ``label_agnostic`` (one value per image rather than per
    label), ``paper``, ``score_mapping`` (the formula of :meth:`normalise`, shown to users
    next to the comprehensive score), ``Params``.

    :meth:`evaluate` returns raw values (P,) float64, NaN where the metric does not apply
    (e.g. localisation on a label without a box, or a non-finite map). :meth:`normalise`
    maps raw values to [0, 1] with higher = better, which is what the comprehensive score
    weighs.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    needs: ClassVar[frozenset[str]] = frozenset()
    label_agnostic: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    score_mapping: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, params: dict[str, Any] | None = None, *, instance_name: str | None = None):
        self.instance_name = instance_name or self.name
        self.params = build_params(self.Params, params, f"metric {self.instance_name!r} ({self.name})")

    @classmethod
    def mapping(cls) -> str:
        """Human-readable formula of :meth:`normalise` (x = raw value)."""
        if cls.score_mapping:
            return cls.score_mapping
        lo, hi = cls.value_range
        lin = "x" if (lo, hi) == (0.0, 1.0) else f"(x - ({lo:g})) / {hi - lo:g}"
        return lin if cls.higher_is_better else f"1 - {lin}"

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "display_name": cls.display_name or cls.name,
            "category": cls.category,
            "higher_is_better": cls.higher_is_better,
            "value_range": list(cls.value_range),
            "needs": sorted(cls.needs),
            "label_agnostic": cls.label_agnostic,
            "paper": cls.paper,
            "score_mapping": cls.mapping(),
            "params": params_schema(cls.Params),
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }

    def evaluate(self, ctx: MetricContext) -> np.ndarray:
        raise NotImplementedError

    # ---- cost (xai_core/plan.py) ---------------------------------------------------------
    def passes_per_pair(self, image_shape: tuple[int, int, int], explainer) -> int | None:
        """Model passes to score one (image, label) pair — one image for a label-agnostic
        metric — of shape (C, H, W) explained by ``explainer`` (metrics that re-explain pay
        its :meth:`~xai_core.explainers.base.Explainer.passes_per_image` again), from the
        metric's definition, given the unperturbed probabilities the engine passes in
        (``MetricContext.probs``); None when not fixed (the plan measures it on a probe).
        The default: no pass (map-only metrics: localisation, complexity)."""
        return 0

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Raw → [0, 1], higher = better: linear over ``value_range``, flipped when lower is
        better, clipped. NaN stays NaN. Unbounded metrics override this."""
        lo, hi = self.value_range
        x = (np.asarray(raw, dtype=np.float64) - lo) / (hi - lo)
        if not self.higher_is_better:
            x = 1.0 - x
        return np.clip(x, 0.0, 1.0)


def finite_maps(saliency: torch.Tensor) -> np.ndarray:
    """(P,) bool: maps with only finite values. Metrics return NaN for the others, so that a
    failing explainer is counted as skipped rather than ranked."""
    if saliency.numel() == 0:
        return np.zeros(saliency.shape[0], dtype=bool)
    return torch.isfinite(saliency.reshape(saliency.shape[0], -1)).all(dim=1).numpy()
