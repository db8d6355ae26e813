"""Finding layers by name or automatically (shared by the CAM family)."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ExplainerError


def resolve_layer(net: nn.Module, name: str) -> nn.Module:
    """``net``'s sub-module at dotted path ``name`` (as in ``net.named_modules()``)."""
    modules = dict(net.named_modules())
    if name not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise ExplainerError(
            f"layer {name!r} is not a module of the model; expected a name from named_modules(), "
            f"e.g. the conv layers {convs[-3:]}"
        )
    return modules[name]


def last_spatial_layer(net: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, nn.Module]:
    """The last leaf module, in execution order, whose output is a (N, C, h, w) map with
    h, w > 1: the deepest layer that still has a spatial layout (the choice of Grad-CAM's
    paper, §3). Found by one forward pass with hooks, so it follows the real data flow,
    not the order of attribute definition."""
    names = {m: n for n, m in net.named_modules()}
    order: list[nn.Module] = []

    def hook(mod, _inp, out):
        if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[2] > 1 and out.shape[3] > 1:
            order.append(mod)

    leaves = [m for m in net.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            net(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise ExplainerError("no layer with a spatial (N, C, h, w) output was found; give `layer` explicitly")
    mod = order[-1]
    return names.get(mod, "?"), mod
