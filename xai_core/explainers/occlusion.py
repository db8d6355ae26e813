"""Occlusion (sliding window)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..rounding import within_rounding
from . import register
from ._perturbation import PerturbationExplainer, check_output
from .base import scaled


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of a window sliding over ``size`` pixels: 0, s, 2s, … up to
    ``size − window``, plus — when ``size − window`` is not a multiple of the stride — one
    extra window flush with the far border (start ``size − window``), so that every pixel is
    covered by a full-size window. E.g. size 11, window 4, stride 3: [0, 3, 6, 7]; the extra
    window overlaps its predecessor by ``window − (size − window) mod stride`` pixels (3 here)
    instead of ``window − stride``. Captum (0.9) instead starts its last window at the next
    stride step (9) and cuts it at the border (2 px wide), so its border scores come from a
    smaller occluded area."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@register
class Occlusion(PerturbationExplainer):
    """Score drop when a square window is filled: mean over the windows covering each pixel of
    F(x) − F(x with the window set to ``fill``).

    Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, §4.2;
    the averaging of Captum's ``Occlusion``. ``window``/``stride`` in pixels, 0 = auto: 15/8 px
    at 224 px (ANCHORS), scaled with the image side. Every class comes from the same passes,
    so the labels of one image cost 1 + (number of windows) passes in all. A label that no
    window moves beyond rounding (:mod:`xai_core.rounding`) gets a map of exactly 0.

    The border window: when the stride does not divide ``side − window``, each axis gets one
    extra window flush with the far border (:func:`window_starts`): (ny + 1)·(nx + 1)
    windows instead of ny·nx when both axes need one (ny, nx: stride positions per axis),
    and the last strip is covered by a full-size window. Each pixel's value is the mean over
    the windows that cover it, so the extra window enters the border pixels' means with the
    same weight as any other, and the number of windows averaged varies near the border.
    """

    name = "occlusion"
    display_name = "Occlusion"
    paper = "Zeiler & Fergus 2014, arXiv:1311.2901"
    smoke_params = {"window": 32, "stride": 32}

    @dataclass(frozen=True)
    class Params:
        window: int = 0
        stride: int = 0
        fill: float = 0.0
        output: str = "prob"

        def check(self):
            if self.window < 0 or self.stride < 0:
                return f"window {self.window} / stride {self.stride}; expected ≥ 0 (0 = auto)"
            return check_output(self.output)

    def passes_per_explained_image(self, image_shape) -> int:
        _, h, w = image_shape
        win, stride = self.geometry(h, w)
        return 1 + len(window_starts(h, win, stride)) * len(window_starts(w, win, stride))  # unoccluded + windows

    def geometry(self, height: int, width: int) -> tuple[int, int]:
        """(window, stride) in pixels for an image of this size."""
        side = min(height, width)
        w = min(self.params.window or scaled(15, side), side)
        return w, self.params.stride or scaled(8, side)

    def attribute_grouped(self, model, images, targets):
        _, c, h, w = images.shape
        win, stride = self.geometry(h, w)
        boxes = [(y, x) for y in window_starts(h, win, stride) for x in window_starts(w, win, stride)]
        out = []
        for img, labels in zip(images, targets):
            if not labels:
                out.append(torch.zeros(0, h, w, device=img.device))
                continue
            lab = torch.as_tensor(labels, device=img.device)
            base = self.scores(model, img[None])[0, lab]
            total = torch.zeros(len(labels), h, w, device=img.device)
            moved = torch.zeros(len(labels), device=img.device)  # the largest |drop| per label
            count = torch.zeros(h, w, device=img.device)
            for i in range(0, len(boxes), self.forward_batch):
                chunk = boxes[i: i + self.forward_batch]
                x = img.expand(len(chunk), c, h, w).clone()
                for j, (y0, x0) in enumerate(chunk):
                    x[j, :, y0:y0 + win, x0:x0 + win] = self.params.fill
                drop = base - self.scores(model, x)[:, lab]  # (B, L)
                moved = torch.maximum(moved, drop.abs().amax(0))
                for j, (y0, x0) in enumerate(chunk):
                    total[:, y0:y0 + win, x0:x0 + win] += drop[j].view(-1, 1, 1)
                    count[y0:y0 + win, x0:x0 + win] += 1
            total[within_rounding(moved, base, self.params.output)] = 0.0  # no window moved it beyond rounding
            out.append(total / count)
        return out
