"""Modified backward rules for activations — Guided Backprop, Deconvolution, DeepLIFT Rescale.

Captum (and MindSpore) install these rules with hooks on ``nn.ReLU`` modules only, so on a
network built with ``nn.ReLU6`` (EfficientNet-Lite, MobileNet), ``F.relu`` calls or reused
activation modules the "guided" map silently equals the plain gradient (ANCHORS.md §2). Here
the rules are applied where activations are *computed*: a ``TorchFunctionMode`` intercepts the
functional calls that every activation module ends in (``nn.ReLU6.forward`` calls
``F.hardtanh``, ``nn.ReLU`` calls ``F.relu``…) as well as direct functional and tensor-method
calls (``F.relu``, ``torch.relu``, ``x.relu()``, in-place variants). Each intercepted call is
replaced by an autograd function with the same forward value and the rule's backward, so a
module called several times gets its rule at every call site.

Rules, with g the gradient arriving at the activation's output and f'(x) its derivative:

* **rectifiers** (ReLU, ReLU6 = hardtanh(0, 6), LeakyReLU, PReLU, ELU, SELU, CELU):
  guided = ReLU(g) · f'(x) (Springenberg et al. 2015, eq. for "guided backpropagation");
  deconvolution = ReLU(g), the forward mask ignored (Zeiler & Fergus 2014, §2.1).
* **gated** smooth activations x · σ(x)-like (SiLU/Swish, GELU, Mish, Hardswish): they are
  smoothed ReLUs, so they are treated as the ReLU they approximate — guided = ReLU(g) · [x > 0],
  deconvolution = ReLU(g). (Their true derivative is negative for x ≲ −1.3 and would let
  negative evidence through, which guided backprop is defined to block.)
* **rescale** (DeepLIFT, Shrikumar et al. 2017, §3.5.1): every element-wise non-linearity
  above plus sigmoid, tanh, softplus, hardsigmoid gets the multiplier Δy/Δx between the input
  and the reference half of the batch (f'(x) where |Δx| < 1e-7); max-pooling gets the
  cross-max rule (Captum's, with overlapping windows accumulated) so that contributions still
  sum to Δoutput. Element-wise products (squeeze-excitation gates) keep plain gradients.

Not intercepted: activations written as ``clamp``/``where`` arithmetic, and TorchScript
models (their graph runs in C++); :attr:`ActivationRules.hits` lets callers detect that.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

RULES = ("guided", "deconv", "rescale")
EPS = 1e-7


@dataclass(frozen=True)
class _Spec:
    kind: str  # "rectifier", "gated", "squash", "maxpool"
    out_of_place: Callable  # the non-in-place function computing the same value
    inplace_pos: int | None = None  # position of an `inplace` positional argument, if any


def _table() -> dict:
    T = torch.Tensor
    t: dict = {}

    def add(kind, funcs, oop, pos=None):
        for f in funcs:
            if f is not None:
                t[f] = _Spec(kind, oop, pos)

    add("rectifier", [F.relu], torch.relu, 1)
    add("rectifier", [torch.relu, T.relu, torch.relu_, T.relu_, getattr(F, "relu_", None)], torch.relu)
    add("rectifier", [F.relu6], F.relu6, 1)
    add("rectifier", [F.hardtanh], F.hardtanh, 3)
    add("rectifier", [getattr(F, "hardtanh_", None)], F.hardtanh)
    add("rectifier", [F.leaky_relu], F.leaky_relu, 2)
    add("rectifier", [getattr(F, "leaky_relu_", None)], F.leaky_relu)
    add("rectifier", [F.elu], F.elu, 2)
    add("rectifier", [getattr(F, "elu_", None)], F.elu)
    add("rectifier", [F.celu], F.celu, 2)
    add("rectifier", [F.selu], F.selu, 1)
    add("rectifier", [F.prelu], F.prelu)
    add("gated", [F.silu], F.silu, 1)
    add("gated", [F.mish], F.mish, 1)
    add("gated", [F.hardswish], F.hardswish, 1)
    add("gated", [F.gelu], F.gelu)
    add("squash", [torch.sigmoid, T.sigmoid, F.sigmoid], torch.sigmoid)
    add("squash", [torch.tanh, T.tanh, F.tanh], torch.tanh)
    add("squash", [F.softplus], F.softplus)
    add("squash", [F.hardsigmoid], F.hardsigmoid, 1)
    # The *_with_indices functions are left alone: their callers want the indices too.
    add("maxpool", [F.max_pool2d], F.max_pool2d_with_indices, 6)
    add("maxpool", [F.adaptive_max_pool2d], F.adaptive_max_pool2d_with_indices, 2)
    return t


_TABLE = _table()
_APPLIES = {"guided": {"rectifier", "gated"}, "deconv": {"rectifier", "gated"},
            "rescale": {"rectifier", "gated", "squash", "maxpool"}}


def _vjp(fn: Callable, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g · f'(x) for an element-wise ``fn``, by autograd on a detached copy."""
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        (out,) = torch.autograd.grad(fn(xx), xx, g)
    return out


class _Elementwise(torch.autograd.Function):
    """Forward: ``fn(x)``. Backward: the rule of ``kind`` instead of f'(x)."""

    @staticmethod
    def forward(ctx, x, fn, rule, kind):
        y = fn(x)
        ctx.fn, ctx.rule, ctx.kind = fn, rule, kind
        ctx.save_for_backward(x, y if rule == "rescale" else None)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if ctx.rule == "deconv":
            return F.relu(g), None, None, None
        if ctx.rule == "guided":
            if ctx.kind == "gated":
                return F.relu(g) * (x > 0), None, None, None
            return _vjp(ctx.fn, x, F.relu(g)), None, None, None
        # DeepLIFT Rescale: both halves get the input half's multiplier (as in Captum).
        plain = _vjp(ctx.fn, x, g)
        xi, xr = x.chunk(2)
        yi, yr = y.chunk(2)
        dx = xi - xr
        ok = dx.abs() > EPS
        mult = torch.where(ok, (yi - yr) / torch.where(ok, dx, torch.ones_like(dx)), 0.0)
        mult = torch.cat([mult, mult])
        return torch.where(torch.cat([ok, ok]), g * mult, plain), None, None, None


class _MaxPoolRescale(torch.autograd.Function):
    """Max-pooling under DeepLIFT: Δout split between the input's and the reference's argmax
    positions (the cross-max rule of Captum's ``maxpool``), divided by Δin there."""

    @staticmethod
    def forward(ctx, x, fn):
        y, idx = fn(x)
        ctx.save_for_backward(x, y, idx)
        return y

    @staticmethod
    def backward(ctx, g):
        x, y, idx = ctx.saved_tensors
        n2, c = x.shape[:2]
        flat_in = x.shape[2] * x.shape[3]

        def scatter(index, values):
            out = torch.zeros(index.shape[0], c, flat_in, dtype=g.dtype, device=g.device)
            # scatter_add, not max_unpool: overlapping windows (3×3 stride 2) must accumulate.
            return out.scatter_add_(2, index.reshape(index.shape[0], c, -1), values.reshape(index.shape[0], c, -1))

        plain = scatter(idx, g).view_as(x)
        xi, xr = x.chunk(2)
        yi, yr = y.chunk(2)
        ii, ir = idx.chunk(2)
        gi = g.chunk(2)[0]
        ymax = torch.maximum(yi, yr)
        contrib = (scatter(ii, gi * (ymax - yr)) + scatter(ir, gi * (yi - ymax))).view_as(xi)
        dx = xi - xr
        ok = dx.abs() > EPS
        new_i = torch.where(ok, contrib / torch.where(ok, dx, torch.ones_like(dx)), plain[: n2 // 2])
        return torch.cat([new_i, plain[n2 // 2:]]), None


class ActivationRules(TorchFunctionMode):
    """Context manager applying ``rule`` ("guided", "deconv" or "rescale") to every activation
    called inside it on a tensor that requires grad. Run only the *forward* pass inside it.

    ``hits`` counts the intercepted calls per kind. For "rescale" the batch must be
    ``torch.cat([inputs, references])``.
    """

    def __init__(self, rule: str):
        super().__init__()
        if rule not in RULES:
            raise ValueError(f"rule {rule!r}; expected one of {RULES}")
        self.rule = rule
        self.hits: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        spec = _TABLE.get(func)
        if (spec is None or spec.kind not in _APPLIES[self.rule] or not args
                or not isinstance(args[0], torch.Tensor) or not args[0].requires_grad):
            return func(*args, **kwargs)
        x, rest = args[0], list(args[1:])
        kwargs = dict(kwargs)
        # Evaluate out of place: an in-place activation would overwrite the tensor whose value
        # the rule needs in backward. Callers use the returned value (x = act(x)) anyway.
        if spec.inplace_pos is not None:
            if spec.kind == "maxpool":
                if len(rest) >= spec.inplace_pos or kwargs.get("return_indices"):
                    return func(*args, **kwargs)  # caller wants indices: leave it alone
                kwargs.pop("return_indices", None)
            elif len(rest) >= spec.inplace_pos:
                del rest[spec.inplace_pos - 1]
            kwargs.pop("inplace", None)

        def fn(t, _f=spec.out_of_place, _r=tuple(rest), _k=kwargs):
            return _f(t, *_r, **_k)

        if self.rule == "rescale" and x.shape[0] % 2:
            raise ValueError("the rescale rule needs a batch of inputs followed by their references")
        self.hits[spec.kind] += 1
        if spec.kind == "maxpool":
            return _MaxPoolRescale.apply(x, fn)
        return _Elementwise.apply(x, fn, self.rule, spec.kind)


def rule_gradients(model, images: torch.Tensor, targets: torch.Tensor, rule: str,
                   references: torch.Tensor | None = None):
    """∂ logit_target / ∂ images (P, C, H, W) with ``rule`` applied to the activations.

    model: a ClassifierHandle. For "rescale", ``references`` (P, C, H, W) run in the same
    batch (DeepLIFT's multipliers compare the two halves). Returns (gradients, hits, logits)
    with logits (P or 2P, K) detached.
    """
    x = images.detach().clone().requires_grad_(True)
    batch = x if references is None else torch.cat([x, references.detach()])
    rules = ActivationRules(rule)
    with rules:
        logits = model(batch)
    sel = logits[: x.shape[0]].gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(sel, x)
    return grad, rules.hits, logits.detach()


# ---- what the Rescale rule does not cover ----------------------------------------------------

def _named(*funcs) -> set:
    return {f for f in funcs if f is not None}


_T = torch.Tensor
_NORMS = _named(F.layer_norm, F.group_norm, F.instance_norm, F.local_response_norm, F.normalize,
                getattr(F, "rms_norm", None), torch.layer_norm, torch.group_norm, torch.instance_norm)
_ATTENTION = _named(F.softmax, F.log_softmax, torch.softmax, torch.log_softmax, _T.softmax, _T.log_softmax,
                    F.scaled_dot_product_attention, F.multi_head_attention_forward)
_PRODUCTS = _named(torch.mul, _T.mul, _T.mul_, _T.__mul__, _T.__rmul__, _T.__imul__, torch.matmul, _T.matmul,
                   _T.__matmul__, _T.__rmatmul__, torch.bmm, _T.bmm, torch.mm, _T.mm, torch.einsum, torch.baddbmm,
                   F.bilinear)
_DIVISIONS = _named(torch.div, _T.div, _T.div_, _T.__truediv__, _T.__itruediv__, torch.true_divide)
_UNARY = _named(torch.exp, _T.exp, torch.log, _T.log, torch.sqrt, _T.sqrt, torch.rsqrt, _T.rsqrt, torch.reciprocal,
                _T.reciprocal, torch.erf, _T.erf, torch.abs, _T.abs, _T.__abs__, torch.square, _T.square, torch.sin,
                torch.cos, torch.clamp, _T.clamp, torch.clip, _T.clip, torch.amax, _T.amax, torch.amin, _T.amin,
                torch.max, _T.max, torch.min, _T.min, torch.topk, _T.topk, torch.sort, _T.sort, torch.cummax)
_POWERS = _named(torch.pow, _T.pow, _T.__pow__)


def _live(t) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def uncovered_kind(func, args, kwargs) -> str | None:
    """Which operation DeepLIFT's Rescale rule (``_rules``) does not cover ``func(*args)`` is,
    for a call on activations (tensors that require grad while the parameters do not), or None:
    linear operations and the activations of :data:`_TABLE` are covered."""
    if func in _TABLE:
        return None
    tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
    if func in _NORMS and tensors and _live(args[0]):
        return f"{getattr(func, '__name__', 'normalisation')}"
    if func in _ATTENTION and any(_live(t) for t in tensors):
        return "softmax attention"
    if func in _PRODUCTS:
        operands = [a for a in args if isinstance(a, torch.Tensor)]
        if func is torch.einsum:
            operands = [a for a in (args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:])
                        if isinstance(a, torch.Tensor)]
        return "products of two activations (gates, attention)" if sum(_live(a) for a in operands) >= 2 else None
    if func in _DIVISIONS:
        return "division by an activation" if len(args) > 1 and _live(args[1]) else None
    if func is _T.__rtruediv__:
        return "division by an activation" if _live(args[0]) else None
    if func in _POWERS:
        exp = args[1] if len(args) > 1 else kwargs.get("exponent")
        return "powers of activations" if _live(args[0]) and not (isinstance(exp, (int, float)) and exp == 1) else None
    if func in _UNARY and args and _live(args[0]):
        return f"{getattr(func, '__name__', 'element-wise function')} without a rule"
    return None


class _Coverage(TorchFunctionMode):
    def __init__(self, where: list[str]):
        super().__init__()
        self.where = where
        self.found: dict[str, list[str]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = uncovered_kind(func, args, kwargs)
        if kind:
            names = self.found.setdefault(kind, [])
            here = self.where[-1] if self.where else "(top level)"
            if here not in names:
                names.append(here)
        return func(*args, **kwargs)


def uncovered_operations(forward, net: torch.nn.Module, images: torch.Tensor) -> dict[str, list[str]]:
    """{kind: [module names]} of the operations on activations that DeepLIFT's Rescale rule
    does not cover, seen in one forward pass of ``images`` through ``forward`` (the pixel-space
    model; ``net`` names the modules). Empty for conv/BN/ReLU-family/max-pool/residual nets."""
    from ._layers import no_fast_path

    names = {m: n for n, m in net.named_modules()}
    where: list[str] = []
    handles = []

    def enter(mod, _args):
        where.append(names[mod])

    def leave(_mod, _args, _out):  # returns None: a forward hook's return value would replace the output
        if where:
            where.pop()

    try:
        for m in net.modules():
            if m is not net:
                handles.append(m.register_forward_pre_hook(enter))
                handles.append(m.register_forward_hook(leave))
    except RuntimeError:  # TorchScript: refused elsewhere (needs_python_forward)
        return {}
    cov = _Coverage(where)
    try:
        with no_fast_path(), torch.enable_grad(), cov:
            forward(images.detach().clone().requires_grad_(True))
    finally:
        for h in handles:
            h.remove()
    return cov.found


def plain_gradients(model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """∂ logit_target / ∂ images (P, C, H, W), no rule: what a rule-based map is compared with."""
    x = images.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, targets.view(-1, 1)).sum(), x)
    return grad


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(P,) Pearson correlation of each pair's flattened ``a`` and ``b`` (0 where one is constant)."""
    a, b = a.detach().flatten(1).double(), b.detach().flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    return torch.where(den > 0, (a * b).sum(1) / den.clamp_min(1e-300), torch.zeros_like(den))
