"""Avg-Sensitivity."""

from __future__ import annotations

from . import register
from ._robustness import SensitivityMetric


@register
class AvgSensitivity(SensitivityMetric):
    """mean over δ of ‖S(x + δ) − S(x)‖ / ‖S(x)‖, δ uniform in the L∞ ball of ``radius``.

    Bhatt, Weller & Moura, "Evaluating and Aggregating Feature-based Model Explanations",
    IJCAI 2020 (average sensitivity), with the same draws and normalisation as
    ``max_sensitivity``: the two differ only in max versus mean, so Avg ≤ Max on the same
    seed. Raw ∈ [0, ∞), lower is better; score exp(−x).
    """

    name = "avg_sensitivity"
    display_name = "Avg-Sensitivity"
    paper = "Bhatt et al. 2020, arXiv:2005.00631"

    def reduce(self, sens):
        return sens.mean(axis=1)
