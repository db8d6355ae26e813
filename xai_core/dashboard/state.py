"""Page state that survives a reload and a page switch: widget values ⇄ URL query parameters.

A page declares its widgets as :class:`Field` s (the widget key is also the URL parameter).
Before drawing the widgets it asks :func:`resolve` for each value, in this order:

1. the live widget value (the page's own rerun), when still valid;
2. the URL (a reload or a shared link: ``?run=demo&sal_tags=FN&sal_sort=score``);
3. the session's copy (Streamlit forgets the state of widgets that were not drawn in the last
   run, so a page switch would reset them: the pages keep a plain copy);
4. the default.

After the widgets, :func:`encode` gives the parameters to put in the URL: only values that
differ from their default, so a plain link stays plain. Anything that comes from outside
(URL, an old session copy after the run changed) is validated against the field's choices or
range and dropped when it does not fit, so a stale or hand-edited link never raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

KINDS = ("str", "strs", "int", "ints", "float", "range", "bool")
EMPTY = ""  # URL value of an empty list (a repeated parameter cannot say "none")


@dataclass(frozen=True)
class Field:
    """One widget's state. ``choices`` (str/strs/int/ints, when non-empty) and ``lo``/``hi``
    (float/range) bound what a URL may set."""

    key: str
    default: Any
    kind: str = "str"
    choices: tuple = ()
    lo: float = -math.inf
    hi: float = math.inf

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"field {self.key!r}: kind {self.kind!r} unknown; expected one of {KINDS}")

    # ---- validation --------------------------------------------------------------------------
    def valid(self, value) -> bool:
        """Whether ``value`` is one this field's widget accepts."""
        k = self.kind
        try:
            if k == "bool":
                return isinstance(value, bool)
            if k in ("str", "int"):
                ok = isinstance(value, str) if k == "str" else (isinstance(value, int) and not isinstance(value, bool))
                return ok and (not self.choices or value in self.choices)
            if k in ("strs", "ints"):
                items = list(value)
                return all(Field(self.key, None, k[:-1], self.choices).valid(v) for v in items) and len(set(items)) == len(items)
            if k == "float":
                return isinstance(value, (int, float)) and self.lo <= float(value) <= self.hi
            if k == "range":
                a, b = value
                return self.lo <= float(a) <= float(b) <= self.hi
        except (TypeError, ValueError):
            return False
        return False

    def normal(self, value):
        """``value`` in the widget's own type (lists for multiselects, tuples for ranges)."""
        if self.kind in ("strs", "ints"):
            return list(value)
        if self.kind == "range":
            return (float(value[0]), float(value[1]))
        if self.kind == "float":
            return float(value)
        return value

    # ---- URL ---------------------------------------------------------------------------------
    def to_url(self, value) -> list[str]:
        k = self.kind
        if k == "bool":
            return ["1" if value else "0"]
        if k in ("str", "int"):
            return [str(value)]
        if k in ("strs", "ints"):
            return [str(v) for v in value] or [EMPTY]
        if k == "float":
            return [_num(value)]
        return [_num(value[0]), _num(value[1])]

    def from_url(self, raw: Sequence[str]):
        """The value a URL carries, or None when it is missing or does not fit the field."""
        raw = [str(r) for r in raw]
        if not raw:
            return None
        k = self.kind
        try:
            if k == "bool":
                v = {"1": True, "0": False, "true": True, "false": False}.get(raw[-1].lower())
            elif k == "str":
                v = raw[-1]
            elif k == "int":
                v = int(raw[-1])
            elif k == "strs":
                v = [] if raw == [EMPTY] else raw
            elif k == "ints":
                v = [] if raw == [EMPTY] else [int(r) for r in raw]
            elif k == "float":
                v = float(raw[-1])
            else:
                if len(raw) != 2:
                    return None
                v = (float(raw[0]), float(raw[1]))
        except ValueError:
            return None
        if v is None or not self.valid(v):
            return None
        return self.normal(v)

    def is_default(self, value) -> bool:
        return self.normal(value) == self.normal(self.default)


def _num(v: float) -> str:
    """Short, exact enough for widget values (steps of 0.001 and up)."""
    v = float(v)
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else repr(round(v, 6))


def resolve(field: Field, live=None, has_live: bool = False, url: Sequence[str] = (), kept=None,
            has_kept: bool = False):
    """The value ``field``'s widget should start this run with (order in the module docstring)."""
    if has_live and field.valid(live):
        return field.normal(live)
    v = field.from_url(url)
    if v is not None:
        return v
    if has_kept and field.valid(kept):
        return field.normal(kept)
    return field.normal(field.default)


def encode(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, list[str]]:
    """{parameter: values} for the fields whose value differs from the default."""
    out = {}
    for f in fields:
        if f.key in values and f.valid(values[f.key]) and not f.is_default(values[f.key]):
            out[f.key] = f.to_url(values[f.key])
    return out
