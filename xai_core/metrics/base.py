"""The metric base class and the context a metric receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ..params import NoParams, build_params, params_schema

CATEGORIES = ("faithfulness", "localization", "robustness", "complexity", "sensitivity", "randomisation")
NEEDS = ("masks", "activation", "gradients", "explainer")


@dataclass
class MetricContext:
    """Everything a metric may read for a batch of P (image, label) pairs.

    images: (P, C, H, W) float32 pixels in [0, 1]; targets: (P,) int64; saliency: (P, H, W)
    float32 (the explainer's raw maps); masks: (P, H, W) bool object masks of the target
    label, with has_mask (P,) bool saying where they exist; is_ground_truth: (P,) bool.
    ``explain`` recomputes maps with the same explainer (robustness metrics need it).
    """

    model: Any
    images: torch.Tensor
    targets: torch.Tensor
    saliency: torch.Tensor
    masks: np.ndarray | None = None
    has_mask: np.ndarray | None = None
    is_ground_truth: np.ndarray | None = None
    explain: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    batch_size: int = 64
    seed: int = 0

    def __len__(self) -> int:
        return int(self.targets.shape[0])


class Metric:
    """Base class of every evaluation metric.

    Class-level metadata: ``name``, ``display_name``, ``category`` (one of CATEGORIES),
    ``higher_is_better``, ``value_range`` (lo, hi) of the raw value, ``needs`` (subset of
    NEEDS), ``label_agnostic`` (one value per image rather than per label), ``Params``.

    :meth:`evaluate` returns raw values (P,) float64, NaN where the metric does not apply
    (e.g. localisation on a label without a box). :meth:`normalise` maps raw values to
    [0, 1] with higher = better, which is what the comprehensive score weighs.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    category: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    value_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    needs: ClassVar[frozenset[str]] = frozenset()
    label_agnostic: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams

    def __init__(self, params: dict[str, Any] | None = None, *, instance_name: str | None = None):
        self.instance_name = instance_name or self.name
        self.params = build_params(self.Params, params, f"metric {self.instance_name!r} ({self.name})")

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
            "params": params_schema(cls.Params),
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }

    def evaluate(self, ctx: MetricContext) -> np.ndarray:
        raise NotImplementedError

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Raw → [0, 1], higher = better: linear over ``value_range``, flipped when lower is
        better, clipped. NaN stays NaN."""
        lo, hi = self.value_range
        x = (np.asarray(raw, dtype=np.float64) - lo) / (hi - lo)
        if not self.higher_is_better:
            x = 1.0 - x
        return np.clip(x, 0.0, 1.0)
