"""Which part of a model's output holds the logits (``model.output``).

A Python model may return a tensor, a dict (Hugging Face models return ``{"logits": …}``
objects), a tuple (logits plus features or auxiliary heads) or an object with attributes; an
ONNX file or a V2 server may have several named outputs. ``model.output`` names the part:
a dict key or attribute, a tuple index, an output name. Unset, the choice is made only when it
is unambiguous — a dict with exactly one of ``logits``/``scores``/``output``, a tuple whose
first element is (N, K), a single output — and recorded in the run's manifest
(``model.output``); anything else stops with one line naming what the model returned and
the setting to use. Duck-typed on ``.shape``: no torch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import ModelError

AUTO_KEYS = ("logits", "scores", "output")


def _shape(v) -> tuple | None:
    shape = getattr(v, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None and not isinstance(v, (Mapping, tuple, list)) else None


def describe_output(out: Any, limit: int = 6) -> str:
    """A short text of what a model returned: "dict with keys logits (1, 10), hidden (1, 5, 32)"."""
    def one(v):
        s = _shape(v)
        return str(s) if s is not None else type(v).__name__

    if _shape(out) is not None:
        return f"a tensor {_shape(out)}"
    if isinstance(out, Mapping):
        items = [f"{k} {one(v)}" for k, v in list(out.items())[:limit]]
        more = ", …" if len(out) > limit else ""
        return f"{type(out).__name__} with keys {', '.join(items) or '(none)'}{more}"
    if isinstance(out, (tuple, list)):
        fields = getattr(out, "_fields", None)
        items = [f"{f} {one(v)}" for f, v in zip(fields, out)] if fields else [one(v) for v in out]
        return f"{type(out).__name__} of {len(out)} ({', '.join(items[:limit])}{', …' if len(out) > limit else ''})"
    attrs = [a for a in AUTO_KEYS if _shape(getattr(out, a, None)) is not None]
    return f"{type(out).__name__}" + (f" with attributes {', '.join(attrs)}" if attrs else "")


def pick(out: Any, selector: str | int | None) -> Any:
    """The part of ``out`` at ``selector`` (None: ``out`` itself). Raises KeyError /
    IndexError / AttributeError when it is not there."""
    if selector is None:
        return out
    if isinstance(out, Mapping):
        return out[selector]
    if isinstance(selector, int):
        return out[selector]
    return getattr(out, selector)


@dataclass(frozen=True)
class OutputChoice:
    """``selector`` (None: the output is the logits tensor) and ``rule`` (how it was chosen)."""

    selector: str | int | None
    rule: str

    def describe(self) -> dict | None:
        """The manifest's ``model.output``; None for a model that returns one tensor."""
        if self.rule in ("a tensor", "a single output"):
            return None
        return {"selected": self.selector, "rule": self.rule}


def _hint(out) -> str:
    if isinstance(out, Mapping) and out:
        return f"model.output: {next(iter(out))}"
    return "model.output: 0" if isinstance(out, (tuple, list)) else "model.output: NAME"


def choose_output(out: Any, setting: str | int | None, where: str = "the model") -> OutputChoice:
    """The :class:`OutputChoice` for a probe output ``out`` under ``model.output: setting``."""
    if setting is not None:
        try:
            part = pick(out, setting)
        except (KeyError, IndexError, AttributeError, TypeError):
            raise ModelError(f"model.output is {setting!r}, but {where} returned {describe_output(out)}; "
                             "expected one of its keys, attributes or indices") from None
        if _shape(part) is None:
            raise ModelError(f"model.output {setting!r} selects {describe_output(part)} from {describe_output(out)}; "
                             "expected the (N, K) logits tensor")
        return OutputChoice(setting, "model.output")
    if _shape(out) is not None:
        return OutputChoice(None, "a tensor")
    if isinstance(out, Mapping):
        keys = [k for k in AUTO_KEYS if k in out and _shape(out[k]) is not None]
        if len(keys) == 1:
            return OutputChoice(keys[0], f"auto: the only one of {'/'.join(AUTO_KEYS)} among the keys {list(out)}")
    elif isinstance(out, (tuple, list)):
        first = _shape(out[0]) if out else None
        if first is not None and len(first) == 2:
            return OutputChoice(0, f"auto: the first element of a {type(out).__name__} of {len(out)}, an (N, K) tensor")
    else:
        attrs = [a for a in AUTO_KEYS if _shape(getattr(out, a, None)) is not None]
        if len(attrs) == 1:
            return OutputChoice(attrs[0], f"auto: the only one of {'/'.join(AUTO_KEYS)} among its attributes")
    raise ModelError(f"{where} returned {describe_output(out)}; expected (N, K) logits — set model.output to the "
                     f"part that holds them (e.g. {_hint(out)})")


def choose_named(names: Sequence[str], setting: str | int | None, where: str) -> OutputChoice:
    """The output (its name) of an ONNX file or a V2 answer with these named outputs; unset:
    the only output, or the only one named logits/scores/output."""
    names = [str(n) for n in names]
    if setting is not None:
        if isinstance(setting, int) and not isinstance(setting, bool) and 0 <= setting < len(names):
            return OutputChoice(names[setting], "model.output")
        if isinstance(setting, str) and setting in names:
            return OutputChoice(setting, "model.output")
        raise ModelError(f"model.output is {setting!r}, but {where} has the outputs {names}; expected one of those "
                         "names (or an index)")
    if len(names) == 1:
        return OutputChoice(names[0], "a single output")
    keys = [k for k in AUTO_KEYS if k in names]
    if len(keys) == 1:
        return OutputChoice(keys[0], f"auto: the only one of {'/'.join(AUTO_KEYS)} among the outputs {names}")
    raise ModelError(f"{where} has {len(names)} outputs {names}; set model.output to the one that holds the (N, K) "
                     f"logits (e.g. model.output: {names[0]})")
