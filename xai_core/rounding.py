"""What float rounding alone can make of a model's outputs, so that it is not read as signal.

A float32 forward pass rounds every operation to 2⁻²⁴ of its magnitude; the same computation in
another kernel order (another CPU model, another ISA dispatch) gives outputs some ulps apart.
Where every perturbation of an image changes the model's output by no more than that, the
change is the machine's kernel order, not the model: a regression on it (LIME) paints noise
~1e-30 that another machine paints differently, and a metric that divides by it (relative
infidelity) is 0/0. Such a change is taken to be no change: below ``OUTPUT_ULPS`` float32 ulps
of the outputs' magnitude (of max(1, |logit|) for logits, whose rounding is set by the
magnitudes they were summed from; of the probability itself for probabilities, which a
softmax or sigmoid rounds relative to their value). A deep network's rounding stays within a
few tens of ulps; a real response to a perturbation of σ = 0.02 is ~1e-2 of the output
(measured on the golden ResNet: 1e-2 … 4e-2; on the toy ColourNet, which is exactly
invariant to channel-shared noise, 4e-7 = 4 ulps).
"""

from __future__ import annotations

import torch

OUTPUT_ULPS = 64
EPS32 = float(torch.finfo(torch.float32).eps)


def rounding_floor(scale: torch.Tensor, output: str = "logit") -> torch.Tensor:
    """The largest change of outputs of magnitude ``scale`` that rounding alone explains;
    ``output``: "logit" (floor relative to max(1, |scale|)) or "prob" (relative to |scale|)."""
    s = scale.abs()
    return OUTPUT_ULPS * EPS32 * (s if output == "prob" else s.clamp_min(1.0))


def within_rounding(spread: torch.Tensor, scale: torch.Tensor, output: str = "logit") -> torch.Tensor:
    """Where a change of ``spread`` (≥ 0) in outputs of magnitude ``scale`` is rounding alone."""
    return spread <= rounding_floor(scale, output)


def unchanged_columns(y: torch.Tensor, output: str = "logit") -> torch.Tensor:
    """(L,) bool: the columns of ``y`` (n, L), one output over n perturbations, whose spread is
    within rounding of their magnitude — outputs the perturbations did not change."""
    if y.shape[0] == 0:
        return torch.zeros(y.shape[1:], dtype=torch.bool, device=y.device)
    return within_rounding(y.max(0).values - y.min(0).values, y.abs().max(0).values, output)
