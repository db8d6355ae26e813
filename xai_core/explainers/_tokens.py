"""What a transformer says about its tokens, read from the model rather than guessed.

* **Prefix and grid** (:func:`declared_tokens`): timm's ``VisionTransformer`` family says
  ``num_prefix_tokens`` (class + distillation + register tokens) and ``patch_embed.grid_size``
  (or, with ``dynamic_img_size``, the image over ``patch_embed.patch_size``); a Hugging Face
  ViT-family model says ``config.patch_size`` (the grid is the image over it: ViT, DeiT, BEiT,
  DINOv2 interpolate their position embeddings or refuse another size), and its prefix is the
  class token, DeiT's distillation token and ``config.num_register_tokens``. A layer whose
  token count is not that prefix + grid (a Swin stage after patch merging) is read by inference.
* **Inference** (``_layers.token_grid`` without a declared grid) can be ambiguous: cls + 8
  registers at 96 px (45 tokens) also reads as 3 + 6×7. :func:`grid_warning` says so in one line.
* **The readout** (:func:`readout_rows`): which rows of the last token output reach the logits,
  by the gradient of a probe pass — only the class token (a class-token head), or patch rows (a
  mean-pooled head: timm ``global_pool='avg'``, ``vit_*_reg4_gap_*``, whose register rows get a
  zero gradient).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from ..devices import to_host
from ._layers import MAX_PREFIX, _aligned, _hook_all, first_tensor, no_fast_path

@dataclass(frozen=True)
class Declared:
    """A model's own statement of its tokens: ``prefix`` (None: not stated), ``grid`` (h, w) and
    where it was read (``source``)."""

    prefix: int | None
    grid: tuple[int, int]
    source: str

    def fits(self, tokens: int) -> int | None:
        """The prefix for a sequence of ``tokens`` when it is this grid after the stated prefix
        (or, the prefix unstated, after any short prefix); None otherwise."""
        rest = tokens - self.grid[0] * self.grid[1]
        if self.prefix is None:
            return rest if 0 <= rest <= MAX_PREFIX else None
        return rest if rest == self.prefix else None


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def _timm(m: nn.Module, image_hw) -> Declared | None:
    pe = getattr(m, "patch_embed", None)
    prefix = getattr(m, "num_prefix_tokens", None)
    if pe is None or not isinstance(prefix, int):
        return None
    if getattr(pe, "dynamic_img_size", False) or getattr(m, "dynamic_img_size", False):
        p = _pair(getattr(pe, "patch_size", 0) or 0)
        if min(p) < 1:
            return None
        up = math.ceil if getattr(pe, "dynamic_img_pad", False) else (lambda v: int(v))
        grid = (int(up(image_hw[0] / p[0])), int(up(image_hw[1] / p[1])))
        src = "timm num_prefix_tokens + image / patch_embed.patch_size (dynamic_img_size)"
    else:
        gs = getattr(pe, "grid_size", None)
        if gs is None:
            return None
        grid, src = _pair(gs), "timm num_prefix_tokens + patch_embed.grid_size"
    return Declared(int(prefix), grid, src)


def _hf(m: nn.Module, image_hw) -> Declared | None:
    cfg = getattr(m, "config", None)
    if cfg is None or not type(m).__module__.startswith("transformers.") or getattr(cfg, "depths", None):
        return None  # hierarchical (Swin, ConvNeXt: `depths`) models have no single grid
    p = getattr(cfg, "patch_size", None)
    if p is None:
        return None
    p = _pair(p)
    grid = (image_hw[0] // p[0], image_hw[1] // p[1])
    kind = getattr(cfg, "model_type", "")
    if kind in ("vit", "beit", "data2vec-vision", "dinov2", "dinov2_with_registers", "deit"):
        prefix = 1 + (kind == "deit") + int(getattr(cfg, "num_register_tokens", 0) or 0)
        return Declared(prefix, grid, f"transformers {kind}: class token"
                        + (", distillation token" if kind == "deit" else "")
                        + (f", {cfg.num_register_tokens} registers" if getattr(cfg, "num_register_tokens", 0) else "")
                        + " + image / config.patch_size")
    return Declared(None, grid, f"transformers {kind or type(m).__name__}: image / config.patch_size")


def declared_tokens(net: nn.Module, image_hw) -> Declared | None:
    """What ``net`` (or its first sub-module that says) declares about its tokens at an image of
    ``image_hw`` (h, w) pixels; None for models that say nothing (a hand-written ViT)."""
    for m in net.modules():
        d = _timm(m, image_hw) or _hf(m, image_hw)
        if d is not None:
            return d
    return None


def grid_hint(model, image_hw):
    """The grid argument of ``_layers.token_grid`` for ``model`` (a handle): ``model.patch_grid``
    when set, else what the network declares (:class:`Declared`), else None (inference)."""
    grid = getattr(model, "patch_grid", None)
    if grid is not None:
        return grid
    net = getattr(model, "net", None)
    return declared_tokens(net, tuple(image_hw)) if isinstance(net, nn.Module) else None


def readings(tokens: int, image_hw) -> list[tuple[int, tuple[int, int]]]:
    """Every (prefix ≤ MAX_PREFIX, (h, w)) reading of ``tokens`` whose grid has the image's aspect
    ratio, smallest prefix first."""
    out = []
    for prefix in range(0, min(MAX_PREFIX, tokens - 4) + 1):
        n = tokens - prefix
        for h in range(2, math.isqrt(n) + 1):
            if n % h == 0:
                for hh, ww in dict.fromkeys(((h, n // h), (n // h, h))):
                    if ww >= 2 and _aligned(hh, ww, image_hw):
                        out.append((prefix, (hh, ww)))
    return out


def grid_warning(tokens: int, image_hw, found) -> str | None:
    """One line when an inferred reading ``found`` (prefix, (h, w)) of ``tokens`` is doubtful:
    its grid has not exactly the image's aspect ratio (a square image read as a non-square grid,
    16 registers at 256 px read as 1 + 16×17), naming the other readings that fit."""
    prefix, (h, w) = found
    if h * image_hw[1] == w * image_hw[0]:
        return None
    others = [f"{p} + {a}×{b}" for p, (a, b) in readings(tokens, image_hw) if (p, (a, b)) != (prefix, (h, w))]
    shape = "a square" if image_hw[0] == image_hw[1] else "an"
    also = f"; also fits {', '.join(others[:3])}" if others else ""
    return (f"{tokens} tokens read as {prefix} + {h}×{w} by inference: a grid not of the aspect ratio of {shape} "
            f"{image_hw[0]}×{image_hw[1]} image{also}; set model.patch_grid: [h, w] if that is wrong")


def readout_rows(model, x: torch.Tensor, tokens: int, prefix: int, forward=None) -> str | None:
    """Which rows of the last (N, ``tokens``, C) output of ``model.net`` reach the logits, by the
    gradient of the top logit of the probe images ``x``: "cls" (row 0 is read, e.g. a class-token
    head, DINOv2's class + patch-mean head), "mean" (only patch rows: a mean-pooled head) or None
    (no token output seen, or nothing reaches: the caller falls back)."""
    batch = int(x.shape[0])
    if tokens == batch:
        return None  # (N, T, C) and (T, N, C) cannot be told apart
    seen: list[torch.Tensor] = []

    def hook(_m, _i, out):
        t = first_tensor(out)
        if t is not None and t.ndim == 3 and t.requires_grad and t.is_floating_point():
            if t.shape[0] == batch and t.shape[1] == tokens:
                seen.append(t)
            elif t.shape[1] == batch and t.shape[0] == tokens:
                seen.append(t.transpose(0, 1))

    handles = _hook_all(model.net, hook)
    try:
        with no_fast_path(), torch.enable_grad():
            out = (forward or model.module)(x.detach().clone().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    if not seen or not isinstance(out, torch.Tensor) or out.ndim != 2:
        return None
    (g,) = torch.autograd.grad(out.gather(1, out.detach().argmax(1, keepdim=True)).sum(), seen[-1], allow_unused=True)
    if g is None:
        return None
    reach = to_host(g.abs().amax(dim=(0, 2)) > 0).tolist()  # (T,) one crossing
    if prefix and reach[0]:
        return "cls"
    if any(reach[prefix:]):
        return "mean"
    return None


def grid_source(tokens: int, image_hw, hint, found) -> tuple[str, str | None]:
    """(where the reading ``found`` of ``tokens`` came from, a warning line or None) for the
    ``hint`` that :func:`grid_hint` gave."""
    if isinstance(hint, tuple):
        return "model.patch_grid", None
    if isinstance(hint, Declared) and hint.fits(tokens) is not None:
        return hint.source, None
    return "inferred", grid_warning(tokens, image_hw, found)


def note(explainer: str, tokens: int, image_hw, hint, found) -> dict:
    """{grid_source, warning?} for an explainer's resolved record; the warning is also issued
    (``UserWarning``, once per resolution) so a notebook or CLI user sees it."""
    source, warning = grid_source(tokens, image_hw, hint, found)
    if warning:
        warnings.warn(f"{explainer}: {warning}", stacklevel=3)
        return {"grid_source": source, "warning": warning}
    return {"grid_source": source}


def layout_note(explainer: str, layout, image_hw, hint) -> dict:
    """:func:`note` for a CAM layer's ``_layers.SpatialLayout`` ({} for a map layout)."""
    if layout is None or not layout.kind.startswith("tokens"):
        return {}
    return note(explainer, layout.prefix + layout.grid[0] * layout.grid[1], image_hw, hint, (layout.prefix, layout.grid))
