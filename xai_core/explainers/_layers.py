"""Finding layers by name or automatically, capturing their outputs, and reading them as
(N, C, h, w) maps (the CAM family).

A layer's output is read in one of four layouts (:data:`LAYOUTS`):

* ``nchw`` — a convolutional map (N, C, h, w);
* ``nhwc`` — a channels-last map (N, h, w, C): Swin stages, ConvNeXt's inner LayerNorms;
* ``tokens`` — transformer tokens (N, T, C): an optional prefix of class/register tokens, then
  the h × w patch tokens in raster order;
* ``tokens_tnc`` — the same, sequence first (T, N, C), ``nn.TransformerEncoder``'s default.

pytorch-grad-cam asks its users to write this as a ``reshape_transform`` per model; here the
layout is read off a probe pass of two images, and the patch grid is ``model.patch_grid``
(``[h, w]``) or else the smallest prefix that leaves a grid of the image's aspect ratio
(197 tokens at 224 px → 1 + 14 × 14; 261 → 5 + 16 × 16 with four registers).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..devices import module_device, to_host
from ..errors import ExplainerError

LAYOUTS = ("nchw", "nhwc", "tokens", "tokens_tnc")
MAX_PREFIX = 16  # class + register tokens considered when no patch_grid is given
PROBE_BATCH = 2  # two images: a batch axis of 2 tells (N, T, C) from (T, N, C)


@contextmanager
def no_fast_path():
    """Turn off torch's fused transformer fast path for the duration: ``nn.TransformerEncoderLayer``
    and ``nn.MultiheadAttention`` otherwise run one C++ kernel under ``no_grad`` that skips
    their sub-modules (and their hooks). The flag is process-wide; restored on exit."""
    mha = getattr(torch.backends, "mha", None)
    if mha is None or not hasattr(mha, "set_fastpath_enabled"):
        yield
        return
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def first_tensor(out):
    """The tensor a module returned: ``out`` itself, or the first element of a tuple/list
    (``nn.MultiheadAttention`` returns (output, weights)); None otherwise."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return None


def _aligned(h: int, w: int, image_hw: tuple[int, int]) -> bool:
    """Does an h × w grid have the aspect ratio of the image (within 15 %)?"""
    if h < 1 or w < 1:
        return False
    sy, sx = image_hw[0] / h, image_hw[1] / w
    return abs(sy - sx) <= 0.15 * max(sy, sx)


def token_grid(tokens: int, image_hw: tuple[int, int], grid=None) -> tuple[int, tuple[int, int]] | None:
    """(prefix, (h, w)) for a sequence of ``tokens``: with ``grid`` given, the tokens left
    before it; else the smallest prefix ≤ MAX_PREFIX leaving an h × w grid (h, w ≥ 2) of exactly the
    image's aspect ratio, or else of about it (15 %). None when nothing fits. ``grid`` may also be what the model declares
    (``_tokens.Declared``): used when ``tokens`` is its prefix + grid, else inference."""
    if grid is not None and hasattr(grid, "fits"):
        prefix = grid.fits(tokens)
        if prefix is not None:
            return prefix, tuple(grid.grid)
        grid = None
    if grid is not None:
        h, w = int(grid[0]), int(grid[1])
        prefix = tokens - h * w
        return (prefix, (h, w)) if 0 <= prefix <= tokens else None
    # A grid of exactly the image's aspect ratio first (cls + 8 registers at 96 px, 45 tokens:
    # 9 + 6×6, not 3 + 6×7), then one within 15 % of it (_tokens.grid_warning says so).
    for fits in (lambda hh, ww: hh * image_hw[1] == ww * image_hw[0], lambda hh, ww: _aligned(hh, ww, image_hw)):
        for prefix in range(0, min(MAX_PREFIX, tokens - 4) + 1):
            n = tokens - prefix
            for h in range(2, int(math.isqrt(n)) + 1):
                if n % h:
                    continue
                for hh, ww in ((h, n // h), (n // h, h)):
                    if ww >= 2 and fits(hh, ww):
                        return prefix, (hh, ww)
    return None


@dataclass(frozen=True)
class SpatialLayout:
    """How to read a layer's output as (N, C, h, w): ``kind`` (one of :data:`LAYOUTS`),
    ``grid`` (h, w), ``prefix`` (leading non-patch tokens, token layouts only)."""

    kind: str
    grid: tuple[int, int]
    prefix: int = 0

    def to_nchw(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` in this layout → (N, C, h, w) (a view or a permuted copy; differentiable)."""
        h, w = self.grid
        if self.kind == "nchw":
            return t
        if self.kind == "nhwc":
            return t.permute(0, 3, 1, 2)
        if self.kind == "tokens_tnc":
            t = t.transpose(0, 1)
        patches = t[:, self.prefix:]
        if patches.shape[1] != h * w:
            raise ExplainerError(f"layer output has {t.shape[1]} tokens; expected {self.prefix} + {h}×{w} "
                                 "(set model.patch_grid: [h, w] when the grid is not square)")
        return patches.transpose(1, 2).reshape(t.shape[0], t.shape[2], h, w)

    def describe(self) -> dict:
        return {"layout": self.kind, "grid": list(self.grid), "prefix_tokens": self.prefix}

    def text(self) -> str:
        h, w = self.grid
        if self.kind.startswith("tokens"):
            return f"{self.prefix} + {h}×{w} tokens" if self.prefix else f"{h}×{w} tokens"
        return f"{h}×{w} {'channels-last ' if self.kind == 'nhwc' else ''}map"


def attention_probs_flag(t: torch.Tensor) -> torch.Tensor | None:
    """A 0-d bool tensor, on ``t``'s device: is ``t`` (N, heads, T, T) softmax attention —
    non-negative rows summing to 1, a token-to-token matrix rather than a T × T map? None when
    its shape already says no. (Read on the host once per probe, with the probe's other flags.)"""
    if t.ndim != 4 or t.shape[2] != t.shape[3] or t.shape[2] < 2:
        return None
    with torch.no_grad():
        return (t >= 0).all() & ((t.sum(-1) - 1).abs() <= 1e-4).all()


def infer_layout(t, batch: int, image_hw: tuple[int, int], grid=None, *, attention: bool = False) -> SpatialLayout | None:
    """The layout of one module output ``t`` for a batch of ``batch`` images, or None when it
    has no spatial reading (a vector, attention over windows, a batch-less tensor; attention
    probabilities when ``attention`` says ``t`` is one, :func:`attention_probs_flag`). From
    shapes only: no device round trip."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        return None
    if t.ndim == 4 and t.shape[0] == batch:
        _, a, b, c = t.shape
        if attention:
            return None
        nchw = b > 1 and c > 1
        if a > 1 and b > 1 and _aligned(a, b, image_hw) and not _aligned(b, c, image_hw):
            return SpatialLayout("nhwc", (a, b))  # e.g. (N, 8, 8, 32): a map, not 8 channels of 8 × 32
        return SpatialLayout("nchw", (b, c)) if nchw else None
    if t.ndim == 3:
        if t.shape[0] == batch and t.shape[1] != batch:
            kind, tokens = "tokens", t.shape[1]
        elif t.shape[1] == batch and t.shape[0] != batch:
            kind, tokens = "tokens_tnc", t.shape[0]
        else:
            return None
        found = token_grid(int(tokens), image_hw, grid)
        if found is None:
            return None
        prefix, g = found
        return SpatialLayout(kind, g, prefix)
    return None


@dataclass(frozen=True)
class LayerChoice:
    """A layer of the user's network: dotted ``name`` (as in ``net.named_modules()``), the
    ``module``, which of its calls in one forward pass to read (``call``; None = the last),
    for modules that run several times per pass (EfficientNet reuses one ``_swish``), and how
    to read its output as a map (``layout``; None until a probe has seen it)."""

    name: str
    module: nn.Module
    call: int | None = None
    layout: SpatialLayout | None = None

    def describe(self) -> dict:
        """What a run records about the layer (manifest ``explainers[].resolved``)."""
        out = {"layer": self.name, "call": self.call}
        if self.layout is not None:
            out.update(self.layout.describe())
        return out


def probe_images(net: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """(2, C, H, W) fixed pseudo-random images in [0.25, 0.75] on the network's device (not
    zeros: a black image can leave every ReLU of a layer dead, hence zero gradients)."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(PROBE_BATCH, *input_shape, generator=g) * 0.5 + 0.25).to(module_device(net))


def resolve_layer(net: nn.Module, name: str) -> LayerChoice:
    """``net``'s sub-module at dotted path ``name``."""
    modules = dict(net.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        blocks = [n for n in modules if _is_block(n, modules)]
        hint = f"e.g. the blocks {blocks[-3:]}" if len(blocks) > len(convs) else f"e.g. the conv layers {convs[-3:]}"
        raise ExplainerError(f"layer {name!r} is not a module of the model; expected a name from named_modules(), {hint}")
    return LayerChoice(name, modules[name])


def _is_block(name: str, modules: dict) -> bool:
    """A repeated unit: a direct child of an ``nn.Sequential``/``nn.ModuleList`` (``blocks.3``,
    ``encoder.layers.1``, ``stages.2``)."""
    parent, _, last = name.rpartition(".")
    return last.isdigit() and isinstance(modules.get(parent), (nn.Sequential, nn.ModuleList))


def _is_spatial_nchw(out) -> bool:
    return isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] > 1 and out.shape[3] > 1


def _hook_all(net: nn.Module, hook):
    try:
        return [m.register_forward_hook(hook) for m in net.modules() if m is not net]
    except RuntimeError as e:  # TorchScript modules take no Python hooks
        raise ExplainerError(f"cannot hook the model's layers ({str(e).splitlines()[0]}); "
                             "CAM methods need a Python nn.Module, not TorchScript") from e


def last_spatial_layer(net: nn.Module, input_shape: tuple[int, ...], grid=None, forward=None) -> LayerChoice:
    """The default layer of the CAM family, found by one probe pass with hooks on every
    sub-module, so it follows the real data flow, not the order of attribute definition.

    Convolutional networks: the module call that *finishes last*, in execution order, among
    those returning a (N, C, h, w) map with h, w > 1 — the deepest point that still has a
    spatial layout (Grad-CAM's paper, §3). Containers count: a residual stage (``layer4`` of a
    ResNet) finishes after its last block, so its output — after the skip addition — is
    chosen rather than the last leaf inside the block.

    Transformers (the last spatial output is tokens or channels-last): the last *block*
    (a child of a Sequential/ModuleList) whose patch tokens reach the logits — found by the
    gradient of the probe's top logits. With a mean-pooled head that is the last block; with a
    class-token head the last block's patch tokens get zero gradient (the head reads only the
    class token after it), so it is the block before — the last block's input, as
    pytorch-grad-cam's ViT tutorial advises. ``forward`` runs the probe (default ``net``; the
    handle's module, which normalises pixels and selects the logits of a dict/tuple output);
    hooks and names are ``net``'s.
    """
    names = {m: n for n, m in net.named_modules()}
    modules = dict(net.named_modules())
    calls: dict[nn.Module, int] = {}
    seen: list[tuple[nn.Module, int, torch.Tensor]] = []
    x = probe_images(net, input_shape)
    image_hw = tuple(input_shape[1:])

    def hook(mod, _inp, out):
        if isinstance(mod, nn.Identity):
            return  # its output is its input: name the module that computed it (timm ConvNeXt's norm_pre)
        k = calls.get(mod, 0)
        calls[mod] = k + 1
        t = first_tensor(out)
        if t is not None and (_is_spatial_nchw(t) or t.ndim == 3 or t.ndim == 4):
            seen.append((mod, k, t))

    handles = _hook_all(net, hook)
    try:
        with no_fast_path(), torch.enable_grad():
            out = (forward or net)(x.requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    found = [(m, k, t, infer_layout(t, PROBE_BATCH, image_hw, grid)) for m, k, t in seen]
    found = [f for f in found if f[3] is not None and (f[3].kind != "nchw" or _is_spatial_nchw(f[2]))]
    if not found:
        raise ExplainerError("no layer with a spatial (N, C, h, w), channels-last or token output was found; "
                             "give `layer` explicitly")

    def choice(m, k, lay):
        return LayerChoice(names.get(m, "?"), m, k if calls[m] > 1 else None, lay)

    m, k, _t, lay = found[-1]
    if lay.kind == "nchw":
        return choice(m, k, lay)
    # Token / channels-last outputs: keep those whose patch part reaches the logits.
    logits = out
    cands = [f for f in found if f[3].kind != "nchw" and f[2].requires_grad]
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not cands:
        return choice(m, k, lay)
    top = logits.detach().argmax(1, keepdim=True)
    grads = torch.autograd.grad(logits.gather(1, top).sum(), [f[2] for f in cands], allow_unused=True)
    reach = [(f, f[3].to_nchw(g).abs().amax() > 0) for f, g in zip(cands, grads) if g is not None]
    flags = to_host(torch.stack([r for _, r in reach])).tolist() if reach else []  # one crossing
    live = [f for (f, _), ok in zip(reach, flags) if ok]
    if not live:
        return choice(m, k, lay)
    blocks = [f for f in live if _is_block(names.get(f[0], ""), modules)]
    m, k, _t, lay = (blocks or live)[-1]
    return choice(m, k, lay)


def layer_layout(net: nn.Module, choice: LayerChoice, input_shape: tuple[int, ...], grid=None,
                 forward=None) -> LayerChoice:
    """``choice`` with its ``layout`` read off a probe pass (for layers named by the user),
    refused with one line when its output is attention probabilities, has no spatial reading,
    or — tokens — its patch tokens do not reach the logits (a class-token head after it)."""
    x = probe_images(net, input_shape)
    with LayerCapture(choice) as cap, no_fast_path(), torch.enable_grad():
        out = (forward or net)(x.requires_grad_(True))
    t = first_tensor(cap.output)
    if t is None:
        raise ExplainerError(f"layer {choice.name!r} returned {type(cap.output).__name__}; expected a tensor")
    flags = []  # read on the host in one crossing
    attn = attention_probs_flag(t)
    if attn is not None:
        flags.append(attn)
    lay = infer_layout(t, PROBE_BATCH, tuple(input_shape[1:]), grid)
    if lay is not None and lay.kind.startswith("tokens") and t.requires_grad and isinstance(out, torch.Tensor):
        (g,) = torch.autograd.grad(out.gather(1, out.detach().argmax(1, keepdim=True)).sum(), t, allow_unused=True)
        if g is not None:
            flags += [lay.to_nchw(g).abs().amax() > 0, g.abs().amax() > 0]
    values = to_host(torch.stack(flags)).tolist() if flags else []
    if attn is not None and values.pop(0):
        raise ExplainerError(f"layer {choice.name!r} returns attention probabilities {tuple(t.shape)} "
                             "(token × token, not a map); name a block instead, or use attention_rollout / "
                             "attention_relevance")
    if lay is None:
        raise ExplainerError(
            f"layer {choice.name!r} returned {tuple(t.shape)} for {PROBE_BATCH} images; expected a (N, C, h, w) map, a "
            "channels-last (N, h, w, C) map or tokens (N, T, C) / (T, N, C) whose patch part forms a grid "
            "(set model.patch_grid: [h, w] for a non-square grid)")
    if values and not values[0] and values[1]:
        raise ExplainerError(
            f"layer {choice.name!r}: its patch tokens do not reach the logits (zero gradient; the head reads only the "
            "class token after this layer); choose an earlier block, or leave `layer` empty")
    return LayerChoice(choice.name, choice.module, choice.call, lay)


class LayerCapture:
    """Context manager keeping the output of ``choice``'s selected call in ``.output``."""

    def __init__(self, choice: LayerChoice):
        self.choice = choice
        self.output = None
        self._count = 0

    def _hook(self, _m, _i, out):
        if self.choice.call is None or self._count == self.choice.call:
            self.output = out
        self._count += 1

    def __enter__(self) -> "LayerCapture":
        self._handle = self.choice.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
