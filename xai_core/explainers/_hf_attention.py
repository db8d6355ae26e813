"""Recording the attention probabilities of Hugging Face transformers models.

transformers 5 computes attention in a function chosen by ``config._attn_implementation``
(``eager_attention_forward``, SDPA, flash…) with a functional softmax: there is no module whose
output is the probabilities. Its documented extension point, ``AttentionInterface``, takes a
registered function instead: :data:`NAME` is the eager computation (scores · scaling + mask,
float32 softmax, dropout in training only, probabilities · values) that hands the probabilities
to the recorder — kept in the autograd graph, so ∂logit/∂A is exact — before using them.
:func:`recording_attention` switches the models to it and back (also on error).

transformers is imported only for a model that is one of its own (``type(m).__module__``).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

NAME = "xai_record"
_RECORD: ContextVar = ContextVar("xai_hf_record", default=None)


def _is_hf(m: nn.Module) -> bool:
    """A transformers model with attention (ConvNeXt, a ResNet: no attention heads in the config)."""
    cfg = getattr(m, "config", None)
    return (type(m).__module__.startswith("transformers.") and hasattr(cfg, "_attn_implementation")
            and (hasattr(cfg, "num_attention_heads") or hasattr(cfg, "num_heads")))


def hf_attention_models(net: nn.Module) -> list[tuple[nn.Module, str]]:
    """The outermost transformers models inside ``net`` (``net`` itself, usually) that dispatch
    their attention through ``AttentionInterface``, with their current implementation."""
    found: list[tuple[str, nn.Module]] = []
    for name, m in net.named_modules():
        if any(p == "" or name.startswith(p + ".") for p, _ in found):
            continue  # inside a model already found: switched with it
        if _is_hf(m) and getattr(m, "_can_set_attn_implementation", lambda: False)():
            found.append((name, m))
    return [(m, str(m.config._attn_implementation)) for _, m in found]


def _record_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_kwargs):
    """transformers' eager attention, with the probabilities (N, heads, T, S) recorded."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    record = _RECORD.get()
    if record is not None:
        kept = record(module, probs)
        probs = probs if kept is None else kept
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def _register() -> None:
    from transformers import AttentionInterface

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, _record_attention)


@contextmanager
def recording_attention(models: list[nn.Module], keep, names: dict | None = None):
    """While inside, ``models`` (transformers models) compute attention with
    :data:`NAME`, calling ``keep(module_name, probs)`` (it may return a tensor to use instead);
    their implementations are restored on exit."""
    _register()
    names = names or {}
    before = [(m, m.config._attn_implementation) for m in models]
    token = _RECORD.set(lambda mod, p: keep(names.get(mod, type(mod).__name__), p))
    try:
        for m in models:
            m.set_attn_implementation(NAME)
        yield
    finally:
        _RECORD.reset(token)
        for m, impl in before:
            m.set_attn_implementation(impl)
