"""Plugin parameters: a frozen dataclass per plugin class, built from config dicts."""

from __future__ import annotations

import dataclasses
from typing import Any

from .errors import ConfigError


@dataclasses.dataclass(frozen=True)
class NoParams:
    """For plugins without parameters."""


def build_params(params_cls: type, values: dict[str, Any] | None, owner: str):
    """Instantiate ``params_cls`` from ``values`` with a helpful error on unknown or bad keys."""
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{owner}: unknown parameter {unknown[0]!r}; expected some of: {', '.join(fields) or '(none)'}"
        )
    for key, value in list(values.items()):
        default = fields[key].default
        # YAML gives lists where the dataclass holds tuples; keep the dataclass hashable.
        if isinstance(value, list):
            values[key] = tuple(value)
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif default is not None and default is not dataclasses.MISSING and value is not None:
            # bool is an int to Python, not to a user: `steps: true` is a mistake.
            wrong_bool = isinstance(value, bool) and not isinstance(default, bool)
            if wrong_bool or (not isinstance(value, type(default)) and not isinstance(default, tuple)):
                raise ConfigError(
                    f"{owner}: parameter {key!r} is {value!r} ({type(value).__name__}); expected {type(default).__name__}"
                )
    try:
        obj = params_cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{owner}: {e}") from e
    check = getattr(obj, "check", None)
    if callable(check):
        problem = check()
        if problem:
            raise ConfigError(f"{owner}: {problem}")
    return obj


def params_schema(params_cls: type) -> dict[str, Any]:
    """{name: default} for the registry listing and the UI."""
    out = {}
    for f in dataclasses.fields(params_cls):
        d = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = list(d) if isinstance(d, tuple) else d
    return out
