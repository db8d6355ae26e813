"""A budget: ``budget: {seconds: 7200}`` or ``{passes: 50000}`` (CLI ``--budget 2h``,
``--budget 50000passes``) chooses what a run leaves out so that its plan (:mod:`.plan`) fits.

The order of the cuts (each stage only when the previous ones at their smallest do not fit):

1. **fewer images** — a sample of (image, label) pairs (:mod:`.sampling`) as large as fits,
   stratified by tag and keeping the mistakes first: every FP and FN pair before any TP or TN
   pair (FP and FN in proportion when not all of them fit), then TP and TN in proportion to
   their numbers; at least one pair of each tag there is;
2. **curve steps** — the metrics' ``steps`` (deletion / insertion) and the path explainers'
   ``steps`` (integrated gradients, XRAI) down to :data:`MIN_STEPS`;
3. **sample counts** — the explainers' and metrics' ``samples`` / ``masks`` down to
   :data:`MIN_SAMPLES`.

A method is never dropped. What was cut is printed and recorded in the manifest's
``budget`` (``spec``, ``cuts``: one line each, ``fits``); when even the smallest plan does
not fit, the run is refused with one line before anything is written. Torch-free at import.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from .errors import ConfigError
from .labels import TAGS

MIN_STEPS = 10
MIN_SAMPLES = 50
STEP_KEYS = ("steps",)
SAMPLE_KEYS = ("samples", "masks")


@dataclass(frozen=True)
class BudgetSpec:
    """At most ``seconds`` of predicted wall time or ``passes`` model passes (one of them)."""

    seconds: float | None = None
    passes: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fits(self, plan: dict) -> bool:
        return plan["passes"] <= self.passes if self.passes is not None else plan["seconds"] <= self.seconds

    def need(self, plan: dict) -> str:
        return f"{plan['passes']:,} passes" if self.passes is not None else f"{plan['seconds']:.0f} s"

    def __str__(self) -> str:
        return f"{self.passes:,} passes" if self.passes is not None else f"{self.seconds:g} s"


_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_budget(raw) -> BudgetSpec | None:
    """``budget:`` of a configuration (a map, or the CLI's text) → :class:`BudgetSpec`."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = budget_text(raw)
    if not isinstance(raw, dict):
        raise ConfigError(f"budget is {raw!r}; expected {{seconds: N}} or {{passes: N}} (CLI --budget 2h or 50000passes)")
    unknown = sorted(set(raw) - {"seconds", "passes"})
    given = {k: v for k, v in raw.items() if v is not None}
    if unknown or len(given) != 1:
        raise ConfigError(f"budget is {raw!r}; expected exactly one of seconds or passes, e.g. {{seconds: 7200}}")
    (key, v), = given.items()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise ConfigError(f"budget.{key} is {v!r}; expected a positive number")
    return BudgetSpec(seconds=float(v)) if key == "seconds" else BudgetSpec(passes=int(v))


def budget_text(text: str) -> dict:
    """``2h``, ``90min``, ``30s``, ``1.5h``, ``3600`` (seconds) or ``50000passes`` → a budget map."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(text).lower())
    if m is None or (m.group(2) and m.group(2) not in _UNITS and m.group(2) not in ("p", "passes", "pass")):
        raise ConfigError(f"--budget {text!r}; expected a duration (2h, 90min, 30s) or a pass count (50000passes)")
    value, unit = float(m.group(1)), m.group(2)
    if unit in ("p", "passes", "pass"):
        return {"passes": int(value)}
    return {"seconds": value * _UNITS.get(unit or "s", 1)}


def _allocate(pairs: int, counts: dict[str, int]) -> dict[str, int]:
    """Pairs per tag for a sample of ``pairs`` pairs: one of each tag there is, then the
    mistakes (FP, FN), then TP and TN — within a group in proportion (largest remainders)."""
    out = {t: min(1, counts.get(t, 0)) for t in TAGS}
    left = pairs - sum(out.values())
    for group in (("FP", "FN"), ("TP", "TN")):
        want = {t: counts.get(t, 0) - out[t] for t in group}
        total = sum(want.values())
        if left <= 0 or total <= 0:
            continue
        if total <= left:
            share = want
        else:
            exact = {t: left * w / total for t, w in want.items()}
            share = {t: int(v) for t, v in exact.items()}
            for t in sorted(group, key=lambda t: -(exact[t] - share[t]))[: left - sum(share.values())]:
                share[t] += 1
        for t in group:
            out[t] += share[t]
        left -= sum(share.values())
    return out


def _with_params(cfg, keys: tuple, minimum: int):
    """``cfg`` with every explainer and metric parameter named in ``keys`` at most ``minimum``
    (explicit or default), and the list of what changed."""
    from .explainers import EXPLAINERS
    from .metrics import METRICS

    registry = {c.name: c for c in [*EXPLAINERS, *METRICS]}
    changed, plugins = [], {}
    for section in ("explainers", "metrics"):
        specs = []
        for spec in getattr(cfg, section):
            params = dict(spec.params or {})
            cls = registry.get(spec.type)
            fields = {f.name: f.default for f in dataclasses.fields(cls.Params)} if cls and dataclasses.is_dataclass(cls.Params) else {}
            for key in keys:
                now = params.get(key, fields.get(key))
                if isinstance(now, int) and not isinstance(now, bool) and now > minimum:
                    params[key] = minimum
                    changed.append(f"{spec.name or spec.type}.{key} {now} → {minimum}")
            specs.append(dataclasses.replace(spec, params=params))
        plugins[section] = tuple(specs)
    return dataclasses.replace(cfg, **plugins), changed

