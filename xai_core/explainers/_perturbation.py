"""Base class of the perturbation methods (Occlusion, RISE, LIME, KernelSHAP).

They query the model with perturbed copies of an image and read *every* class from each
forward pass, so the labels of one image share all their passes: a method implements
:meth:`PerturbationExplainer.attribute_grouped` (images with label lists), and both
``explain`` (pairs, grouped here by identical image content) and ``explain_grouped`` (the
runner's path) end there. ``batch_size`` is the number of perturbed images per forward pass.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

import torch

from .base import Explainer, image_digest, model_device, to_device, to_host

OUTPUTS = ("prob", "logit")


def solve(a: torch.Tensor, b: torch.Tensor, infos: list | None = None) -> torch.Tensor:
    """``torch.linalg.solve(a, b)``; given ``infos`` (a list), the singularity check is deferred:
    the solution comes from ``solve_ex`` and its error code is appended, for one check after
    the last pass of a call (:meth:`PerturbationExplainer.check_solves`) — on a device each
    check waits for it."""
    if infos is None:
        return torch.linalg.solve(a, b)
    out, info = torch.linalg.solve_ex(a, b)
    infos.append(info.reshape(-1))
    return out


def check_output(output: str) -> str | None:
    if output not in OUTPUTS:
        return f"output is {output!r}; expected one of {OUTPUTS}"
    return None


class PerturbationExplainer(Explainer):
    """Maps from model outputs on perturbed inputs; no gradients.

    Subclasses implement :meth:`attribute_grouped` and declare in ``Params`` an ``output``
    field: "prob" (the activated class score — what MindSpore's occlusion and the RISE/LIME
    papers use) or "logit".
    """

    needs_gradients: ClassVar[bool] = False
    channel_reduction: ClassVar[str] = "none"

    # ---- cost (xai_core/plan.py) ---------------------------------------------------------
    def passes_per_image(self, image_shape, labels: int) -> int | None:
        """Every label of an image comes from the same passes: :meth:`passes_per_explained_image`
        once per image with at least one label."""
        if labels <= 0:
            return 0
        return self.passes_per_explained_image(image_shape)

    def passes_per_explained_image(self, image_shape) -> int | None:
        """Model passes per image, whatever its number of labels; None: not fixed."""
        return None

    # ---- the algorithm -------------------------------------------------------------------
    def attribute_grouped(self, model, images: torch.Tensor, targets: list[list[int]]) -> list[torch.Tensor]:
        """images: (N, C, H, W) float32 in [0, 1]; targets: N lists of class indices (maybe
        empty). Returns N float32 tensors (L_i, H, W). Runs under ``torch.no_grad``."""
        raise NotImplementedError

    def scores(self, model, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, K) class scores per ``params.output``, in forward passes of at
        most ``forward_batch`` images (counted in ``model.passes``)."""
        outs = []
        for i in range(0, x.shape[0], self.forward_batch):
            chunk = x[i: i + self.forward_batch]
            outs.append(model.probs(chunk) if self.params.output == "prob" else model(chunk))
        return torch.cat(outs).float()

    def region_scores(self, model, image: torch.Tensor, segments: torch.Tensor, keep: torch.Tensor,
                      fill: float) -> torch.Tensor:
        """Scores (n, K) of ``image`` (C, H, W) with the regions where ``keep`` (n, S) is 0 set
        to ``fill``; ``segments`` (H, W) int64 region labels 0 … S−1. ``keep`` and
        ``segments`` may be host tensors (drawn on the CPU): they move to the image's device
        once."""
        keep, segments = to_device(keep, image.device), to_device(segments, image.device)
        outs = []
        for i in range(0, keep.shape[0], self.forward_batch):
            m = keep[i: i + self.forward_batch].float()[:, segments].unsqueeze(1)  # (B, 1, H, W)
            outs.append(self.scores(model, image * m + fill * (1.0 - m)))
        return torch.cat(outs)

    def check_solves(self, infos: list, what: str) -> None:
        """Raise when any deferred :func:`solve` of this call met a singular system."""
        if infos and bool(torch.cat(infos).any()):
            raise self.error(f"the {what} system is singular; expected a regularised (positive definite) one — "
                             "raise the ridge penalty or the number of samples")

    def attribute(self, model, images, targets):
        return torch.cat(self.attribute_grouped(model, images, [[t] for t in to_host(targets).tolist()]))

    # ---- entry points ----------------------------------------------------------------------
    def explain(self, model, images: torch.Tensor, targets, *, batch_size: int = 32) -> torch.Tensor:
        """As :meth:`Explainer.explain`; pairs showing the same image share their passes."""
        targets = self.check_pairs(model, images, targets)
        slot: dict[bytes, int] = {}
        firsts: list[int] = []
        members: list[list[tuple[int, int]]] = []  # per unique image: (target, pair index)
        host = to_host(images.detach())  # one copy, to group the pairs by content on the host
        for p, t in enumerate(targets.tolist()):
            key = image_digest(host[p])
            if key not in slot:
                slot[key] = len(firsts)
                firsts.append(p)
                members.append([])
            members[slot[key]].append((t, p))
        grouped = self._grouped(model, images[firsts], [[t for t, _ in m] for m in members], batch_size,
                                host[firsts] if self.uses_host_pixels else None)
        out = torch.empty(images.shape[0], *images.shape[2:], device=images.device)
        for maps, m in zip(grouped, members):
            for j, (_, p) in enumerate(m):
                out[p] = maps[j]
        return out

    def explain_grouped(self, model, images: torch.Tensor, targets: Sequence[Sequence[int]], *,
                        batch_size: int = 32) -> list[torch.Tensor]:
        """As :meth:`Explainer.explain_grouped`; every label of an image from the same passes."""
        return self._grouped(model, images, targets, batch_size, self.host_copy(images))

    def _grouped(self, model, images: torch.Tensor, targets, batch_size: int, host) -> list[torch.Tensor]:
        """:meth:`explain_grouped` with ``host``, the host copy of ``images`` (:meth:`host_copy`)
        already made (``explain`` made one to group its pairs)."""
        lists = [[int(c) for c in t] for t in targets]
        if images.ndim != 4 or len(lists) != images.shape[0]:
            raise self.error(f"images {tuple(images.shape)} with {len(lists)} label lists; "
                             "expected (N, C, H, W) and one list per image")
        k = getattr(model, "num_classes", None)
        bad = [c for t in lists for c in t if c < 0 or (k is not None and c >= k)]
        if bad:
            raise self.error(f"target classes {bad} out of range; expected 0 … {k - 1}")
        self.reset_diagnostics()
        self.forward_batch = max(1, int(batch_size))
        home = images.device
        x = to_device(images.detach(), model_device(model))
        self._host = host
        try:
            with torch.no_grad():
                # Standard layout, as in Explainer.explain (channels-last takes other kernels).
                maps = self.attribute_grouped(model, x.contiguous(), lists)
        finally:
            self._host = None
        size = tuple(images.shape[2:])
        out = []
        for m, t in zip(maps, lists):
            if tuple(m.shape) != (len(t), *size):
                raise self.error(f"produced maps {tuple(m.shape)}; expected {(len(t), *size)}")
            out.append(to_device(m.float(), home))
        return out
