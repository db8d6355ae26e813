"""A simulated accelerator on the CPU: the device rules of ``xai_core/devices.py``, tested
without a GPU (this project's machines have none).

Tensors "on the simulated device" are CPU tensors of the subclass :class:`SimTensor`; they
report ``torch.device("meta")`` as their device, so ``torch.zeros(..., device=x.device)`` and
``t.to(x.device)`` create more of them (the :class:`SimulatedDevice` mode intercepts those
calls and computes on the CPU). The mode then behaves as CUDA does where our code could go
wrong, and records what a GPU would wait for:

* mixing device tensors with host tensors of one or more dimensions in one operation raises
  :class:`DeviceRuleError` (as CUDA raises "Expected all tensors to be on the same device"),
  except where CUDA accepts host tensors — host index tensors in ``t[idx]`` / ``t[idx] = v``,
  a host value copied into a device tensor, 0-dim host tensors;
* ``.numpy()`` / ``np.asarray`` of a device tensor raises (CUDA raises TypeError);
* a CPU ``torch.Generator`` drawing straight onto the device raises;
* every crossing the host waits for is logged as a *sync*, with the xai_core line that made
  it: ``.cpu()``/``.to("cpu")``, ``.item()``, ``.tolist()``, ``float()``/``int()``/``bool()``,
  boolean-mask indexing, ``nonzero``/``unique``, ``linalg.solve``'s error check, a device
  value copied into a host tensor. Model passes are logged too (a pre-hook on the model), so a
  test can ask which syncs fell *between* two passes of one call: the per-pass round trips
  the rules forbid.

Everything computes on the CPU with the same operations, so a simulated run must give the
CPU run's numbers bit for bit; where it does not, the code takes another path on a device.
Backward passes are not checked (the autograd engine hands plain tensors to backward
functions); the backward rules' own allocations follow ``g.device`` by construction.
"""

from __future__ import annotations

import copy
import traceback

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

SIM = torch.device("meta")
T = torch.Tensor


class SimTensor(torch.Tensor):
    """CPU data standing for data on the simulated device."""

    def __deepcopy__(self, memo):  # torch's default needs new_empty to keep the subclass
        if id(self) in memo:
            return memo[id(self)]
        with torch._C.DisableTorchFunctionSubclass():
            data = self.as_subclass(torch.Tensor).detach().clone()
        new = wrap(data)
        if getattr(self, "_is_param", False):
            new = nn.Parameter(new, requires_grad=self.requires_grad)
        memo[id(self)] = new
        return new


class DeviceRuleError(AssertionError):
    """Code that would fail on a real accelerator."""


def wrap(t):
    if isinstance(t, torch.Tensor) and not isinstance(t, SimTensor):
        with torch._C.DisableTorchFunctionSubclass():
            return t.as_subclass(SimTensor)
    return t


def unwrap(t):
    if isinstance(t, SimTensor):
        with torch._C.DisableTorchFunctionSubclass():
            return t.as_subclass(torch.Tensor)
    return t


def on_device(t) -> bool:
    return isinstance(t, SimTensor)


_SYNCS = {T.item, T.tolist, T.__bool__, T.__int__, T.__float__, T.__index__, T.nonzero, torch.nonzero,
          T.unique, torch.unique, torch.masked_select, T.masked_select, torch.linalg.solve, torch.linalg.inv,
          T.__repr__, torch.bincount, T.bincount}
_NUMPY = {T.numpy, T.__array__}
# Functions on tensor metadata only (nn.Module.to asks them), never a computation.
_METADATA = {torch._has_compatible_shallow_copy_type}


def _is_sim_device(d) -> bool:
    return (isinstance(d, torch.device) and d.type == "meta") or d == "meta"


def _where() -> str:
    """The innermost xai_core frame of the current stack, as path:line (function)."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if "/xai_core/" in frame.filename and not frame.filename.endswith("/xai_core/devices.py"):
            return f"{frame.filename.split('/xai_core/')[1]}:{frame.lineno} ({frame.name})"
    return "?"


class SimulatedDevice(TorchFunctionMode):
    """``with SimulatedDevice() as dev: …``: see the module docstring. ``dev.events`` lists
    ("pass", n) and ("sync", what, where) in order."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple] = []

    # ---- bookkeeping ---------------------------------------------------------------------
    def sync(self, what: str) -> None:
        self.events.append(("sync", what, _where()))

    def model_pass(self, n: int) -> None:
        self.events.append(("pass", n))

    @property
    def passes(self) -> int:
        return sum(e[1] for e in self.events if e[0] == "pass")

    def syncs(self) -> list[tuple]:
        return [e for e in self.events if e[0] == "sync"]

    def syncs_between_passes(self, start: int = 0) -> list[tuple]:
        """The syncs after the first and before the last model pass logged since ``start``."""
        ev = self.events[start:]
        at = [i for i, e in enumerate(ev) if e[0] == "pass"]
        if not at:
            return []
        return [e for e in ev[at[0]: at[-1]] if e[0] == "sync"]

    # ---- the device's behaviour ------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if torch._C._current_autograd_node() is not None:  # inside backward: not checked
            return func(*args, **kwargs)
        if getattr(func, "__name__", "") == "__get__" and getattr(func, "__self__", None) is T.device:
            return SIM if on_device(args[0]) else func(*args, **kwargs)
        if func is T.to:
            return self._to(args, kwargs)
        if func is T.cpu:
            if on_device(args[0]):
                self.sync("cpu()")
            return unwrap(args[0])
        if func is T.cuda:
            raise DeviceRuleError("Tensor.cuda(): use to_device(t, device), the device comes from the model")
        if func in _NUMPY and on_device(args[0]):
            raise DeviceRuleError(f"numpy() of a device tensor at {_where()}: CUDA raises TypeError; "
                                  "bring it to the host first (to_host)")
        device = kwargs.get("device")
        if device is not None and _is_sim_device(device):
            if isinstance(kwargs.get("generator"), torch.Generator) and kwargs["generator"].device.type == "cpu":
                raise DeviceRuleError(f"{getattr(func, '__name__', func)} draws from a CPU generator straight onto "
                                      f"the device at {_where()}: CUDA refuses; draw on the host, then to_device")
            out = func(*args, **{**kwargs, "device": "cpu"})
            return wrap(out) if isinstance(out, torch.Tensor) else out
        flat = tree_flatten((args, kwargs))[0]
        if func in _METADATA or (getattr(func, "__name__", "") == "__set__" and getattr(func, "__self__", None) is T.data):
            # nn.Module.to swaps parameter data (`param.data = …`): the simulated parameter keeps
            # its class, so a module moved "to the host" still computes as on the device here.
            return func(*args, **kwargs)
        if any(on_device(t) for t in flat):
            if func in _SYNCS:
                self.sync(getattr(func, "__name__", str(func)))
            host = [t for t in flat if isinstance(t, torch.Tensor) and not on_device(t) and t.dim() > 0]
            if host:
                self._mixed(func, args, host)
        return func(*args, **kwargs)

    def _to(self, args, kwargs):
        src, rest = args[0], args[1:]
        device, dtype, _non_blocking, memory_format = torch._C._nn._parse_to(*rest, **kwargs)
        if any(on_device(a) for a in rest) or _is_sim_device(device):
            target = "sim"
        elif device is None:
            target = "sim" if on_device(src) else "host"
        else:
            target = "host" if device.type == "cpu" else device.type
        if target not in ("sim", "host"):
            raise DeviceRuleError(f"to({device}) at {_where()}: a device other than the model's")
        plain = unwrap(src)
        kw = {k: v for k, v in (("dtype", dtype), ("memory_format", memory_format)) if v is not None}
        if "copy" in kwargs:
            kw["copy"] = kwargs["copy"]
        with torch._C.DisableTorchFunctionSubclass():
            out = plain.to(**kw) if kw else plain
        if target == "sim":
            return wrap(out)
        if on_device(src):
            self.sync("to(cpu)")
        return out

    def _mixed(self, func, args, host) -> None:
        name = getattr(func, "__name__", str(func))
        if func in (T.__getitem__, T.__setitem__) and args:
            target, index = args[0], args[1]
            index_tensors = [t for t in tree_flatten(index)[0] if isinstance(t, torch.Tensor)]
            if on_device(target):
                # CUDA accepts host index tensors and copies a host value in.
                if any(on_device(t) and t.dtype == torch.bool for t in index_tensors):
                    self.sync("boolean-mask index")
                return
            if func is T.__setitem__ and on_device(args[2]) and not any(on_device(t) for t in index_tensors):
                self.sync("device value copied into a host tensor")
                return
        if func is T.copy_ and args:  # copy_ crosses devices: host → device, or a waited-for device → host
            if not on_device(args[0]):
                self.sync("copy_ into a host tensor")
            return
        shapes = [tuple(t.shape) for t in host]
        raise DeviceRuleError(f"{name} at {_where()} mixes device tensors with host tensors {shapes}: "
                              "CUDA raises 'Expected all tensors to be on the same device'")


def simulated_handle(handle, dev: SimulatedDevice):
    """A copy of ``handle`` (a ClassifierHandle) whose weights live on the simulated device;
    its passes are logged in ``dev``."""
    module = copy.deepcopy(handle.module)
    for m in module.modules():
        for name, p in list(m._parameters.items()):
            if p is not None:
                m._parameters[name] = nn.Parameter(wrap(p.detach()), requires_grad=p.requires_grad)
        for name, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[name] = wrap(b)
    module.register_forward_pre_hook(lambda _m, a: dev.model_pass(int(a[0].shape[0])))
    extra = {"precision": handle.precision} if "precision" in getattr(type(handle), "__dataclass_fields__", {}) else {}
    return type(handle)(module=module, activation=handle.activation, input_size=tuple(handle.input_size),
                        num_classes=handle.num_classes, channels=handle.channels, **extra)


def plain(obj):
    """``obj`` with every SimTensor made a plain CPU tensor (lists, tuples, dicts too)."""
    if isinstance(obj, SimTensor):
        return unwrap(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain(o) for o in obj)
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj
