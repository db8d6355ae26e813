"""Deconvolution (deconvnet), on every ReLU-family activation."""

from __future__ import annotations

from . import register
from .guided_backprop import GuidedBackprop


@register
class Deconvolution(GuidedBackprop):
    """Backward pass in which every rectifier applies ReLU to the signal, ignoring the forward mask.

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, §2.1
    (the "rectification" step of the deconvnet); formulated as a backward rule as in Captum,
    applied to every ReLU-family activation (see ``_rules.py``). Max of |·| over channels.
    """

    name = "deconvolution"
    display_name = "Deconvolution"
    paper = "Zeiler & Fergus 2014, arXiv:1311.2901"
    rule = "deconv"
