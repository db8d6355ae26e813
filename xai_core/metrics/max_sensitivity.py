"""Max-Sensitivity."""

from __future__ import annotations

from . import register
from ._robustness import SensitivityMetric


@register
class MaxSensitivity(SensitivityMetric):
    """max over δ of ‖S(x + δ) − S(x)‖ / ‖S(x)‖, δ uniform in the L∞ ball of ``radius``.

    Yeh, Hsieh, Suggala, Inouye & Ravikumar, "On the (In)fidelity and Sensitivity of
    Explanations", NeurIPS 2019 (max-sensitivity), estimated by Monte Carlo with ``samples`` draws and
    normalised by the map's norm as ``captum.metrics.sensitivity_max`` (whose values it
    reproduces for the same seed). Radius 0.02 of the [0, 1] pixel range by default.
    Raw ∈ [0, ∞), lower is better; score exp(−x).
    """

    name = "max_sensitivity"
    display_name = "Max-Sensitivity"

    def reduce(self, sens):
        return sens.max(axis=1)
