"""Evaluation metrics: one file per metric, all registered in :data:`METRICS`."""

from ..registry import Registry
from .base import Metric, MetricContext

METRICS: Registry[Metric] = Registry("metric", __name__)
register = METRICS.register

__all__ = ["METRICS", "Metric", "MetricContext", "register"]
