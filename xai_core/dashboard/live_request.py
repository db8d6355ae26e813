"""What a live explanation is asked for (the "Explain an image" page): the explainers and their
choices, the request and its bounds, checked before anything runs. ``live.py`` computes it;
``live_settings.py`` resolves a run's settings into it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import XaiError
from .live_inputs import LIMITS, LiveError, LiveLimits, LiveModel

MAP_METRICS = ("sparseness", "complexity")        # from the map alone: always
CURVE_METRICS = ("deletion_auc", "insertion_auc")  # model passes per map: on request
SCRATCH = "scratch"                               # the logdir folder of the runs the page adds to
DEFAULT_EXPLAINERS = ("gradient", "gradcam", "occlusion")


def explainer_choices(model: LiveModel) -> list[dict]:
    """Registry metadata of the explainers this model can run (forward-only models: no
    gradient methods; TorchScript: none that act inside the Python forward pass)."""
    from ..explainers import EXPLAINERS

    out = []
    for cls in EXPLAINERS:
        meta = cls.metadata()
        if model.forward_only and meta["needs_gradients"]:
            continue
        if model.model.get("torchscript") and meta["needs_python_forward"]:
            continue
        out.append(meta)
    return out


def main_params(type_name: str) -> dict:
    """{parameter: default} of an explainer's numeric and yes/no parameters (the registry's
    defaults); the others keep their defaults."""
    from ..explainers import EXPLAINERS

    schema = EXPLAINERS.get(type_name).metadata()["params"]
    return {k: v for k, v in schema.items() if isinstance(v, (int, float, bool))}


@dataclass(frozen=True)
class LiveRequest:
    """What to compute: ``explainers`` ((type, ((param, value), …)), …), ``curves`` (deletion and
    insertion AUC too), ``top_k`` labels by probability, or exactly the ``labels`` named."""

    explainers: tuple[tuple[str, tuple], ...]
    curves: bool = False
    top_k: int = 3
    labels: tuple[int, ...] = ()
    seed: int = 0

    @property
    def metrics(self) -> list[str]:
        return list(MAP_METRICS) + (list(CURVE_METRICS) if self.curves else [])

    def entries(self) -> list[dict]:
        return [{"type": t, "name": t, "params": dict(p)} for t, p in self.explainers]

    def run_config(self, model: LiveModel) -> dict:
        # fast_forward off: an ONNX export and probe per configuration would cost more than it saves
        return {"model": {**model.model, "fast_forward": "off"},
                "dataset": {"kind": "memory", "classes": list(model.classes)},
                "explainers": self.entries(), "metrics": self.metrics,
                "labels": {"top_k": self.config_top_k}, "seed": self.seed}

    @property
    def config_top_k(self) -> int:
        """The run configuration's ``labels.top_k``: k, or 0 when the labels are named (the
        request's targets choose them)."""
        return 0 if self.labels else self.top_k

    @property
    def key(self) -> str:
        """Identifies the configuration (a scratch run holds one): explainers, metrics, top-k, seed."""
        return hashlib.sha256(json.dumps([self.entries(), self.metrics, self.config_top_k, self.seed], sort_keys=True,
                                         default=str).encode()).hexdigest()[:8]

    def targets(self, n: int) -> list[list[int]] | Callable:
        if self.labels:
            return [list(self.labels)] * n
        k = self.top_k
        return lambda probs: [list(np.argsort(-p, kind="stable")[:k]) for p in probs]


def check_request(model: LiveModel, req: LiveRequest, n_images: int, limits: LiveLimits = LIMITS) -> None:
    """LiveError, before anything runs, for a request over the bounds or with bad parameters."""
    from ..config import config_from_dict
    from ..service.protocol import passes_per_label

    if not req.explainers:
        raise LiveError("choose at least one explainer")
    if not 1 <= n_images <= limits.max_images:
        raise LiveError(f"{n_images} images; a request explains 1 … {limits.max_images}")
    n_labels = len(req.labels) if req.labels else req.top_k
    if not 1 <= n_labels <= limits.max_labels:
        raise LiveError(f"{n_labels} labels per image; the cap is {limits.max_labels}")
    bad = [c for c in req.labels if not 0 <= c < len(model.classes)]
    if bad:
        raise LiveError(f"labels {bad} are not classes of this model (0 … {len(model.classes) - 1})")
    try:
        exps, _ = config_from_dict(req.run_config(model)).instantiate()
    except XaiError as e:
        raise LiveError(str(e)) from e
    h, w = model.input_size
    for e in exps:
        cost = passes_per_label(e, h, w)
        if cost > limits.max_passes:
            raise LiveError(f"{e.instance_name}: these parameters cost {cost:,} model passes per image and label; "
                            f"the cap is {limits.max_passes:,}")
