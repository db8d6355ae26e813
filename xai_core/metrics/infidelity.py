"""Infidelity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..devices import to_device, to_host
from ..rounding import rounding_floor
from . import register
from .base import Metric, finite_maps


@register
class Infidelity(Metric):
    """How badly the map predicts the output change under random perturbations:
    E_I[(Iᵀ(β·S) − (f(x) − f(x − I)))²].

    Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019 (infidelity), computed as ``captum.metrics.infidelity`` with
    ``normalize=True`` (β = E[IᵀS·Δf] / E[(IᵀS)²], the optimal scaling they use, so maps of
    any unit compare). Perturbations I: ``samples`` draws per pair of Gaussian noise of
    ``noise_std`` (pixels in [0, 1]; 0.02 like the sensitivity radius — on the demo model
    larger noise leaves the linear regime and blurs the ranking of explainers), one value per
    pixel shared by the colour channels, so IᵀS = Σ_pixels I·S is exact for channel-summed
    maps. f: the target ``output``, "logit" (what gradient-type explainers attribute) or
    "prob". Unsigned maps (|gradient|) cannot predict a signed Δf and score near chance.

    Raw value: with ``relative`` (default) the infidelity divided by E[Δf²], i.e. 1 − c²
    where c is the uncentred correlation of IᵀS with Δf — the share of the output change the
    map fails to predict, ∈ [0, 1], unit-free; score 1 − x. A map unrelated to the model still
    gets c² ≈ 1/samples by chance, so its raw value sits near 1 − 1/samples. With
    ``relative=False``: Captum's value itself, in output units², ∈ [0, ∞); score 1 / (1 + x).
    Lower is better. NaN when no perturbation changes the output (E[Δf²] = 0, relative only;
    a change within float rounding of the output counts as none, :mod:`xai_core.rounding`:
    else the ratio of two rounding errors would score the map) or the map is non-finite.
    Forward passes: P × samples (+ P for f(x) unless ``output="prob"`` and ``ctx.probs``).
    """

    name = "infidelity"
    display_name = "Infidelity"
    category = "robustness"
    higher_is_better = False
    value_range = (0.0, float("inf"))
    paper = "Yeh et al. 2019, arXiv:1901.09392"
    score_mapping = "1 - x (relative=true, default); 1 / (1 + x) otherwise"

    @dataclass(frozen=True)
    class Params:
        samples: int = 20
        noise_std: float = 0.02
        output: str = "logit"
        normalize: bool = True
        relative: bool = True

        def check(self):
            if self.samples < 1:
                return f"samples is {self.samples}; expected ≥ 1"
            if self.noise_std <= 0:
                return f"noise_std is {self.noise_std}; expected > 0"
            if self.output not in ("logit", "prob"):
                return f"output is {self.output!r}; expected 'logit' or 'prob'"
            return None

    def passes_per_pair(self, image_shape, explainer) -> int | None:
        return self.params.samples + 1  # the perturbed images and the reference

    def _outputs(self, model, x: torch.Tensor, targets: torch.Tensor, batch_size: int) -> torch.Tensor:
        out = torch.empty(x.shape[0], device=x.device)
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                y = model(x[i: i + batch_size])
                if self.params.output == "prob":
                    y = model.activate(y)
                out[i: i + batch_size] = y.gather(1, targets[i: i + batch_size].view(-1, 1)).view(-1)
        return out

    def perturbations(self, ctx) -> torch.Tensor:
        """(P·samples, 1, H, W) noise in Captum's layout (pairs repeated with
        ``repeat_interleave``), one draw from a generator seeded with ``ctx.seed``."""
        p, _, h, w = ctx.images.shape
        noise = torch.randn((p * self.params.samples, 1, h, w), generator=ctx.generator())
        return noise * self.params.noise_std

    def evaluate(self, ctx):
        p, n = len(ctx), self.params.samples
        if p == 0:
            return np.zeros(0)
        pert = self.perturbations(ctx)  # drawn on the host; Iᵀ S is computed there too
        targets = torch.repeat_interleave(ctx.targets, n)
        x = torch.repeat_interleave(ctx.images, n, dim=0) - to_device(pert, ctx.images.device)
        f_pert = self._outputs(ctx.model, x, targets, ctx.batch_size)
        if self.params.output == "prob" and ctx.probs is not None:
            f_x = ctx.probs.gather(1, ctx.targets.view(-1, 1)).view(-1).float()
        else:
            f_x = self._outputs(ctx.model, ctx.images, ctx.targets, ctx.batch_size)
        diff = to_host((torch.repeat_interleave(f_x, n) - f_pert).double().view(p, n))  # after the last pass
        # Outputs no perturbation moved beyond rounding (xai_core/rounding.py): Δf = 0, not noise.
        scale = torch.maximum(to_host(f_x).double().abs(), to_host(f_pert).double().abs().view(p, n).amax(1))
        diff[diff.abs().amax(1) <= rounding_floor(scale, self.params.output)] = 0.0
        sal = ctx.saliency.double().reshape(p, 1, -1)
        proj = (pert.double().view(p, n, -1) * sal).sum(dim=2)  # Iᵀ S, (P, n)
        a, b, c = (proj * proj).mean(1), (proj * diff).mean(1), (diff * diff).mean(1)
        if self.params.normalize:
            beta = torch.where(a == 0, torch.zeros_like(a), b / torch.where(a == 0, torch.ones_like(a), a))
            infid = beta * beta * a - 2 * beta * b + c
        else:
            infid = ((proj - diff) ** 2).mean(1)
        out = infid.numpy()
        if self.params.relative:
            cn = c.numpy()
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.where(cn > 0, out / cn, np.nan)
        out = np.clip(out, 0.0, None)  # β²a − 2βb + c ≥ 0 exactly; rounding can dip below
        out[~finite_maps(ctx.saliency)] = np.nan
        return out

    def normalise(self, raw):
        x = np.clip(np.asarray(raw, dtype=np.float64), 0.0, None)
        if self.params.relative and self.params.normalize:
            return np.clip(1.0 - x, 0.0, 1.0)
        return 1.0 / (1.0 + x)
