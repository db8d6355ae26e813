"""Reading a transformer's attention probabilities (and their gradients) during a forward pass,
for the attention explainers (``attention_rollout``, ``attention_relevance``).

Where the probabilities come from — the **hook point**:

* ``nn.MultiheadAttention`` (also inside ``nn.TransformerEncoderLayer``): while recording, its
  ``forward`` is replaced by :func:`mha_forward`, the same computation written out in Python
  (tested equal to torch's), so the softmax output it multiplies the values with is seen and
  stays in the autograd graph. torch's fused fast path, which would skip the module, is
  switched off meanwhile (``_layers.no_fast_path``) and restored after.
* a **hand-written attention** module: route its softmax probabilities (N, heads, T, T)
  through a sub-module and either name that sub-module ``attn_drop`` (timm's convention: the
  ``nn.Dropout`` after the softmax, an identity in eval) or set ``xai_attention_probs = True``
  on it (any module, e.g. an ``nn.Identity()``). Its forward output is recorded.
* **timm** ``Attention`` modules (``fused_attn = True`` on torch ≥ 2: one
  ``F.scaled_dot_product_attention`` call that never runs ``attn_drop``): while recording,
  ``fused_attn`` is set False on every module that has it, and restored after (also on error).
* **transformers** ViT-family models (attention computed in a function, no module to hook):
  while recording, the model runs a recording attention function registered through
  transformers' ``AttentionInterface`` (``_hf_attention``), and its own implementation after.
* explicitly: the explainers' ``modules`` parameter, a comma-separated list of
  ``fnmatch`` patterns of module names (``blocks.*.attn.attn_drop``), which replaces the two
  automatic rules above for hand-written modules.

The recorded tensors are those the model really uses, so ∂logit/∂A is exact.
"""

from __future__ import annotations

import fnmatch
import math
import types
from contextlib import ExitStack
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExplainerError
from ._hf_attention import NAME as HF_NAME
from ._hf_attention import hf_attention_models, recording_attention
from ._layers import no_fast_path, probe_images, token_grid
from ._tokens import grid_hint, note, readout_rows
from .base import Explainer

TOKENS = ("auto", "cls", "mean")
MARK = "xai_attention_probs"
HOOK_NAME = "attn_drop"


def _additive(mask: torch.Tensor | None, dtype) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))
    return mask.to(dtype)


def mha_forward(mha: nn.MultiheadAttention, query, key, value, key_padding_mask=None, need_weights=True,
                attn_mask=None, average_attn_weights=True, is_causal=False, *, record=None):
    """``nn.MultiheadAttention.forward`` written out (eval mode: no dropout), calling
    ``record(probs)`` with the (N, heads, L, S) softmax probabilities it then uses (or the
    tensor ``record`` returns instead, when it returns one).

    Supports batch-first and sequence-first inputs, unbatched inputs, packed or separate
    q/k/v projections, boolean or additive ``attn_mask`` (L, S) / (N·heads, L, S),
    ``key_padding_mask`` (N, S) and ``is_causal``; ``bias_k``/``bias_v``/``add_zero_attn`` are
    refused (rare, and they append tokens the maps would have to hide)."""
    if mha.bias_k is not None or mha.bias_v is not None or mha.add_zero_attn:
        raise ExplainerError("nn.MultiheadAttention with bias_k/bias_v/add_zero_attn is not supported by the "
                             "attention explainers")
    unbatched = query.dim() == 2
    if unbatched:  # (L, E): one sequence; handled as a batch of one, batch first
        query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif not mha.batch_first:
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
    n, tq, e = query.shape
    ts = key.shape[1]
    h = mha.num_heads
    d = e // h
    if mha._qkv_same_embed_dim:
        wq, wk, wv = mha.in_proj_weight.chunk(3)
    else:
        wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    bq = bk = bv = None
    if mha.in_proj_bias is not None:
        bq, bk, bv = mha.in_proj_bias.chunk(3)
    q = F.linear(query, wq, bq).view(n, tq, h, d).transpose(1, 2)
    k = F.linear(key, wk, bk).view(n, ts, h, d).transpose(1, 2)
    v = F.linear(value, wv, bv).view(n, ts, h, d).transpose(1, 2)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(d)                        # (N, h, L, S)
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(tq, ts, dtype=torch.bool, device=q.device).triu(1)
    am = _additive(attn_mask, scores.dtype)
    if am is not None:
        scores = scores + (am.view(n, h, tq, ts) if am.dim() == 3 else am)
    kp = _additive(key_padding_mask, scores.dtype)
    if kp is not None:
        scores = scores + kp.view(n, 1, 1, ts)
    probs = scores.softmax(dim=-1)
    if record is not None:  # it may return a tensor to use instead (same values)
        kept = record(probs)
        probs = probs if kept is None else kept
    out = (probs @ v).transpose(1, 2).reshape(n, tq, e)
    out = mha.out_proj(out)
    if unbatched:
        out = out.squeeze(0)
    elif not mha.batch_first:
        out = out.transpose(0, 1)
    weights = None
    if need_weights:
        weights = probs.mean(1) if average_attn_weights else probs
        if unbatched:
            weights = weights.squeeze(0)
    return out, weights


def _patterns(spec: str) -> list[str]:
    return [p.strip() for p in (spec or "").split(",") if p.strip()]


def attention_sources(net: nn.Module, modules: str = "") -> tuple[list[tuple[str, nn.Module]], list[tuple[str, nn.Module]]]:
    """(``nn.MultiheadAttention`` modules, hand-written hook points) of ``net``, by name.
    ``modules``: fnmatch patterns that select the hook points instead of the automatic rule
    (a sub-module named ``attn_drop`` or marked ``xai_attention_probs = True``)."""
    pats = _patterns(modules)
    mha, marked = [], []
    for name, m in net.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            if not pats or any(fnmatch.fnmatchcase(name, p) for p in pats):
                mha.append((name, m))
        elif pats:
            if any(fnmatch.fnmatchcase(name, p) for p in pats):
                marked.append((name, m))
        elif getattr(m, MARK, False) or name.rpartition(".")[2] == HOOK_NAME:
            marked.append((name, m))
    return mha, marked


class AttentionRecorder:
    """Context manager recording, in call order, every attention probability tensor
    (N, heads, T, S) that ``net`` computes inside it: ``.probs`` (list of tensors) and
    ``.names`` (the module each came from). Use it around the forward pass only.

    ``grad=True``: every recorded tensor is one ∂logit/∂A can be taken of — an attention that
    does not depend on the input (fixed scores) gets a zero that requires grad added, which
    changes neither its value nor any other gradient."""

    def __init__(self, net: nn.Module, modules: str = "", *, grad: bool = False):
        self.mha, self.marked = attention_sources(net, modules)
        # timm's fused attention skips `attn_drop`: switched off while recording (restored after).
        self.fused = [(n, m) for n, m in net.named_modules() if isinstance(getattr(m, "fused_attn", None), bool)]
        self.hf = [] if _patterns(modules) else hf_attention_models(net)
        self._names = {m: n for n, m in net.named_modules()} if self.hf else {}
        self.grad = grad
        self.probs: list[torch.Tensor] = []
        self.names: list[str] = []
        self._stack: ExitStack | None = None

    @property
    def found(self) -> bool:
        return bool(self.mha or self.marked or self.hf)

    @property
    def switched(self) -> dict:
        """What recording changed on the model, for the explainer's resolved record."""
        out = {}
        if self.fused:
            out["fused_attn_off"] = len(self.fused)
        if self.hf:
            out["attn_implementation"] = {"model": sorted({impl for _, impl in self.hf}), "while_recording": HF_NAME}
        return out

    def _keep(self, name: str, t):
        if isinstance(t, torch.Tensor):
            if self.grad and not t.requires_grad:
                t = t + torch.zeros_like(t).requires_grad_(True)
            self.probs.append(t)
            self.names.append(name)
        return t

    def __enter__(self) -> "AttentionRecorder":
        self._stack = stack = ExitStack()
        stack.enter_context(no_fast_path())
        for _name, m in self.fused:
            stack.callback(setattr, m, "fused_attn", m.fused_attn)
            m.fused_attn = False
        if self.hf:
            stack.enter_context(recording_attention([m for m, _ in self.hf], self._keep, self._names))
        for name, m in self.mha:
            def forward(mod, *args, _name=name, **kwargs):
                return mha_forward(mod, *args, record=lambda p: self._keep(_name, p), **kwargs)

            had = "forward" in m.__dict__
            old = m.__dict__.get("forward")
            m.forward = types.MethodType(forward, m)
            stack.callback(lambda m=m, had=had, old=old: setattr(m, "forward", old) if had else delattr(m, "forward"))
            # A hook, even a no-op one, keeps the pass on torch under model.fast_forward (models/fast.py).
            stack.callback(m.register_forward_pre_hook(lambda *_: None).remove)
        for name, m in self.marked:
            handle = m.register_forward_hook(lambda _m, _i, out, _name=name: self._keep(_name, out))
            stack.callback(handle.remove)
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


class AttentionExplainer(Explainer):
    """Base of the attention explainers: records the attention probabilities of one forward
    pass (:class:`AttentionRecorder`), lets a subclass combine them into a token-to-token
    relevance matrix R (P, T, T) (:meth:`relevance`), reads the output token's row — the class
    token's (``token: cls``), or the mean over all tokens for a mean-pooled head (``mean``);
    ``auto``: the class token when the sequence has a prefix before the patch grid — and
    upsamples its patch part (h × w, as for the CAM family: ``model.patch_grid`` or square)
    bilinearly to the image. Refused up front, with one line, on a model without attention
    or whose attention is not over the image's tokens (Swin-like windows, token counts that
    change between layers)."""

    needs_python_forward = True
    needs_attention = True
    signed = False
    channel_reduction = "none"

    @dataclass(frozen=True)
    class Params:
        modules: str = ""
        token: str = "auto"

        def check(self):
            if self.token not in TOKENS:
                return f"token is {self.token!r}; expected one of {TOKENS}"
            return None

    def relevance(self, probs: list[torch.Tensor], logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P, T, T) token relevance from the recorded (P, heads, T, T) probabilities."""
        raise NotImplementedError

    # ---- structure, checked once per (network, input shape) -------------------------------
    def structure(self, model, image_shape: tuple[int, ...]) -> dict:
        key = (id(model.net), tuple(image_shape), getattr(model, "patch_grid", None), self.params.token)
        return self.cached("_structure", key, lambda: self._probe(model, image_shape))

    def _probe(self, model, image_shape: tuple[int, ...]) -> dict:
        rec = AttentionRecorder(model.net, self.params.modules)
        if not rec.found:
            raise self.error(
                "the model has no attention to read: no nn.MultiheadAttention and no hook point (a sub-module named "
                f"{HOOK_NAME!r} or marked {MARK} = True whose output is the softmax probabilities); use a CAM or "
                "gradient method, or mark the attention (see xai_core/explainers/_attention.py)")
        x = probe_images(model.net, image_shape)
        with rec, torch.no_grad():
            model.module(x)
        info = self._check_probs(rec, x.shape[0], tuple(image_shape[1:]), grid_hint(model, image_shape[1:]))
        info.update(rec.switched)
        info.update(note(self.name, info["tokens"], tuple(image_shape[1:]), grid_hint(model, image_shape[1:]),
                         (info["prefix_tokens"], tuple(info["grid"]))))
        mode, rule = self.params.token, "set (token:)"
        if mode == "auto":
            mode = readout_rows(model, x, info["tokens"], info["prefix_tokens"])
            rule = "gradient probe: the rows of the last token output that reach the logits"
            if mode is None:
                mode, rule = ("cls" if info["prefix_tokens"] else "mean"), "prefix rule (no token output to probe)"
        if mode == "cls" and not info["prefix_tokens"]:
            g = info["grid"]
            raise self.error(f"token: cls, but the {info['tokens']} tokens have no prefix before the {g[0]}×{g[1]} "
                             "patch grid")
        info["token"] = mode
        info["readout"] = {"rows": "row 0 (class token)" if mode == "cls" else
                           f"mean of the {info['grid'][0] * info['grid'][1]} patch rows", "rule": rule}
        return info

    def _check_probs(self, rec: AttentionRecorder, batch: int, image_hw, grid) -> dict:
        if not rec.probs:
            where = ", ".join([n for n, _ in (rec.mha + rec.marked)[:3]] + [type(m).__name__ for m, _ in rec.hf[:1]])
            raise self.error(
                f"the attention modules ({where}) were not called, or returned no tensor, in a forward pass: the model "
                "computes its attention without them (a fused kernel such as F.scaled_dot_product_attention, or a "
                "function), so there are no probabilities to read; name the softmax output's module with `modules`, "
                "or use gradcam")
        shapes = {tuple(p.shape) for p in rec.probs}
        first = rec.probs[0]
        if any(p.ndim != 4 or p.shape[-1] != p.shape[-2] for p in rec.probs):
            raise self.error(f"attention probabilities of shapes {sorted(shapes)}; expected (N, heads, T, T) self-attention")
        if any(p.shape[0] != batch for p in rec.probs):
            bad = next(n for n, p in zip(rec.names, rec.probs) if p.shape[0] != batch)
            raise self.error(f"{bad!r} attends within windows (batch axis {tuple(p.shape[0] for p in rec.probs)[:4]} for "
                             f"{batch} images: Swin-like windowed attention), so there is no image-wide token relevance; "
                             "use gradcam on a stage instead")
        tokens = {p.shape[-1] for p in rec.probs}
        if len(tokens) > 1:
            raise self.error(f"the number of tokens changes between attention layers ({sorted(tokens)}: patch merging "
                             "or pooling), so the layers' relevances cannot be chained; use gradcam instead")
        t = int(first.shape[-1])
        found = token_grid(t, image_hw, grid)
        if found is None:
            raise self.error(f"cannot read {t} tokens as prefix + patch grid; set model.patch_grid: [h, w]")
        prefix, g = found
        return {"modules": list(dict.fromkeys(rec.names)), "layers": len(rec.probs), "tokens": t,
                "prefix_tokens": prefix, "grid": list(g)}

    def check_model(self, model) -> None:
        super().check_model(model)
        shape = self.probe_shape(model)
        if shape is not None:
            self.structure(model, shape)

    @property
    def resolved(self) -> dict | None:
        cache = getattr(self, "_structure", None)
        return dict(cache[1]) if cache else None

    # ---- the maps --------------------------------------------------------------------------
    def token_relevance(self, model, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(P, T) relevance of every token for the output token (class token or mean), from
        (P, C, H, W) images; the patch part, reshaped to the grid, is the map."""
        info = self.structure(model, tuple(images.shape[1:]))
        if self.needs_gradients:  # ∂logit/∂A needs a graph; the parameters do not require grad
            images = images.detach().requires_grad_(True)
        rec = AttentionRecorder(model.net, self.params.modules, grad=self.needs_gradients)
        with rec:
            if self.needs_gradients:
                logits = model(images)
            else:
                # One pass of the whole chunk, never cut in pieces by the handle's forward-only
                # batching (each layer must be recorded once for every image); an out-of-memory
                # error is retried by explain() on half the pairs instead.
                logits = model.module(images)
                model.passes += int(images.shape[0])
        self._check_probs(rec, images.shape[0], tuple(images.shape[2:]), grid_hint(model, images.shape[2:]))
        r = self.relevance(rec.probs, logits, targets)
        # A mean-pooled head averages the patch rows only: never class or register rows.
        return r[:, 0] if info["token"] == "cls" else r[:, info["prefix_tokens"]:].mean(dim=1)

    def attribute(self, model, images, targets):
        info = self.structure(model, tuple(images.shape[1:]))
        row = self.token_relevance(model, images, targets)
        h, w = info["grid"]
        grid = row[:, info["prefix_tokens"]:].reshape(-1, 1, h, w).float()
        return F.interpolate(grid, size=images.shape[2:], mode="bilinear", align_corners=False)[:, 0]


def identity_like(probs: torch.Tensor) -> torch.Tensor:
    """(P, T, T) identity matrices on the device and dtype of (P, heads, T, T) ``probs``."""
    p, _, t, _ = probs.shape
    return torch.eye(t, dtype=probs.dtype, device=probs.device).expand(p, t, t)
