"""Saliency explainers: one file per method, all registered in :data:`EXPLAINERS`."""

from ..registry import Registry
from .base import Explainer

EXPLAINERS: Registry[Explainer] = Registry("explainer", __name__)
register = EXPLAINERS.register

__all__ = ["EXPLAINERS", "Explainer", "register"]
