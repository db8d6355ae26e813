"""Finding layers by name or automatically, and capturing their outputs (the CAM family)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..devices import module_device
from ..errors import ExplainerError


@dataclass(frozen=True)
class LayerChoice:
    """A layer of the user's network: dotted ``name`` (as in ``net.named_modules()``), the
    ``module``, and which of its calls in one forward pass to read (``call``; None = the last),
    for modules that run several times per pass (EfficientNet reuses one ``_swish``)."""

    name: str
    module: nn.Module
    call: int | None = None


def resolve_layer(net: nn.Module, name: str) -> LayerChoice:
    """``net``'s sub-module at dotted path ``name``."""
    modules = dict(net.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ExplainerError(
            f"layer {name!r} is not a module of the model; expected a name from named_modules(), "
            f"e.g. the conv layers {convs[-3:]}"
        )
    return LayerChoice(name, modules[name])


def _spatial(out) -> bool:
    return isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] > 1 and out.shape[3] > 1


def last_spatial_layer(net: nn.Module, input_shape: tuple[int, ...]) -> LayerChoice:
    """The module call that *finishes last*, in execution order, among those returning a
    (N, C, h, w) map with h, w > 1: the deepest point that still has a spatial layout (the
    choice of Grad-CAM's paper, §3). Found by one forward pass with hooks on every sub-module,
    so it follows the real data flow, not the order of attribute definition.

    Containers count: a residual stage (``layer4`` of a ResNet) finishes after its last block,
    so its output — after the skip addition — is chosen rather than the last leaf inside the
    block (which may be a BatchNorm before a functional ``relu(out + identity)``).
    """
    names = {m: n for n, m in net.named_modules()}
    calls: dict[nn.Module, int] = {}
    last: list[tuple[nn.Module, int]] = []

    def hook(mod, _inp, out):
        k = calls.get(mod, 0)
        calls[mod] = k + 1
        if _spatial(out):
            last[:] = [(mod, k)]

    try:
        handles = [m.register_forward_hook(hook) for m in net.modules() if m is not net]
    except RuntimeError as e:  # TorchScript modules take no Python hooks
        raise ExplainerError(f"cannot hook the model's layers ({str(e).splitlines()[0]}); "
                             "CAM methods need a Python nn.Module, not TorchScript") from e
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_shape, device=module_device(net)))
    finally:
        for h in handles:
            h.remove()
    if not last:
        raise ExplainerError("no layer with a spatial (N, C, h, w) output was found; give `layer` explicitly")
    mod, k = last[0]
    return LayerChoice(names.get(mod, "?"), mod, k if calls[mod] > 1 else None)


class LayerCapture:
    """Context manager keeping the output of ``choice``'s selected call in ``.output``."""

    def __init__(self, choice: LayerChoice):
        self.choice = choice
        self.output: torch.Tensor | None = None
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
