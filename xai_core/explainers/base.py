"""The explainer base class: batching, channel reduction and bookkeeping live here, so a
method file holds little more than its algorithm (:meth:`Explainer.attribute`)."""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch

from ..errors import ExplainerError
from ..params import NoParams, build_params, params_schema


class Explainer:
    """Base class of every saliency method.

    Class-level metadata (read by the registry listing, config validation and the UI):
    ``name`` (registry key), ``display_name``, ``needs_gradients``, ``paper`` (citation or
    URL), ``signed`` (whether maps carry a meaningful sign), ``Params`` (a frozen dataclass
    of the method's parameters with their defaults).

    Subclasses implement :meth:`attribute` for (image, label) pairs. Perturbation methods
    that get every class's output from one forward pass override :meth:`explain_grouped`
    to share those passes across the labels of one image.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    needs_gradients: ClassVar[bool] = True
    paper: ClassVar[str] = ""
    signed: ClassVar[bool] = True
    Params: ClassVar[type] = NoParams
    # "sum" keeps the sign and, for path methods, completeness; "max_abs" is the classic
    # saliency of Simonyan et al. (2014); "none" means attribute() already returns (N, H, W).
    channel_reduction: ClassVar[str] = "sum"

    def __init__(self, params: dict[str, Any] | None = None, *, instance_name: str | None = None):
        self.instance_name = instance_name or self.name
        self.params = build_params(self.Params, params, f"explainer {self.instance_name!r} ({self.name})")

    @classmethod
    def metadata(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "display_name": cls.display_name or cls.name,
            "needs_gradients": cls.needs_gradients,
            "signed": cls.signed,
            "paper": cls.paper,
            "params": params_schema(cls.Params),
            "description": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        }

    # ---- the algorithm -------------------------------------------------------------------
    def attribute(self, model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Attributions for pairs.

        model: :class:`~xai_core.models.ClassifierHandle`; images: (P, C, H, W) float32 pixels
        in [0, 1]; targets: (P,) int64 class indices. Returns (P, C, H, W) or (P, H, W).
        """
        raise NotImplementedError

    # ---- batching, owned here ------------------------------------------------------------
    def reduce(self, attr: torch.Tensor) -> torch.Tensor:
        if attr.ndim == 3:
            return attr
        if self.channel_reduction == "max_abs":
            return attr.abs().amax(dim=1)
        return attr.sum(dim=1)

    def explain(self, model, images: torch.Tensor, targets: torch.Tensor | Sequence[int], *,
                batch_size: int = 32) -> torch.Tensor:
        """Saliency maps for (image, label) pairs.

        images: (P, C, H, W) float32 in [0, 1]; targets: (P,) class indices.
        Returns (P, H, W) float32 on the raw scale of the method, sign kept.
        """
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if images.ndim != 4 or images.shape[0] != targets.shape[0]:
            raise ExplainerError(
                f"{self.instance_name}: images {tuple(images.shape)} and targets {tuple(targets.shape)} "
                "do not match; expected (P, C, H, W) and (P,)"
            )
        out = []
        for i in range(0, images.shape[0], batch_size):
            x, t = images[i: i + batch_size], targets[i: i + batch_size]
            with torch.enable_grad() if self.needs_gradients else torch.no_grad():
                a = self.attribute(model, x.detach().clone(), t)
            a = self.reduce(a.detach()).float()
            if a.shape != (x.shape[0], *x.shape[2:]):
                raise ExplainerError(f"{self.instance_name}: produced maps {tuple(a.shape)}; expected {(x.shape[0], *x.shape[2:])}")
            out.append(a)
        if not out:
            return torch.zeros(0, *images.shape[2:])
        return torch.cat(out)

    def explain_grouped(self, model, images: torch.Tensor, targets: Sequence[Sequence[int]], *,
                        batch_size: int = 32) -> list[torch.Tensor]:
        """Maps for several labels per image.

        images: (N, C, H, W); targets: N lists of class indices. Returns N tensors
        (L_i, H, W). The default flattens to pairs, so a batch mixes labels and images.
        """
        counts = [len(t) for t in targets]
        idx = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts, dtype=torch.long))
        flat = torch.as_tensor([c for t in targets for c in t], dtype=torch.long)
        maps = self.explain(model, images[idx], flat, batch_size=batch_size)
        return list(torch.split(maps, counts))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(instance_name={self.instance_name!r}, params={self.params})"
