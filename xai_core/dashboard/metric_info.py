"""What a run says about its metrics, for every view of its scores: :class:`MetricInfo` (from
the manifest's registry metadata) and the one name of each metric's [0, 1] score —
"Deletion (1 − AUC)" — that the assessment pages, Compare runs, the report and the live page
all show (:attr:`MetricInfo.score_name`, :func:`score_names`, :func:`registry_score_names`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .tables import RunTables


@dataclass(frozen=True)
class MetricInfo:
    name: str
    display_name: str
    category: str
    higher_is_better: bool
    value_range: tuple[float, float]
    label_agnostic: bool
    description: str = ""  # the metric's one-line definition (registry metadata, in the manifest)
    mapping: str = "x"     # how the raw value x became the [0, 1] score (registry ``score_mapping``)

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def mapped(self) -> bool:
        return self.mapping.replace(" ", "") != "x"

    @property
    def score_name(self) -> str:
        """The name of the [0, 1] score, saying when it is not the raw value: "Deletion (1 − AUC)"
        (a deletion AUC of 0.023 scores 0.977), "Complexity (entropy) [1 − x]"; the display
        name itself when score = raw."""
        if not self.mapped:
            return self.display_name
        formula = _pretty(self.mapping)
        if self.display_name.endswith(" AUC"):
            return f"{self.display_name[:-4]} ({formula.replace('x', 'AUC')})"
        return f"{self.display_name} [{formula}]"


def _pretty(formula: str) -> str:
    """A mapping formula for display: a real minus sign."""
    return formula.replace("-", "−")


def default_mapping(higher_is_better: bool, value_range: tuple[float, float]) -> str:
    """The linear mapping a run without ``score_mapping`` in its manifest used (Metric.mapping)."""
    lo, hi = value_range
    lin = "x" if (lo, hi) == (0.0, 1.0) else f"(x - ({lo:g})) / {hi - lo:g}"
    return lin if higher_is_better else f"1 - {lin}"


def metric_infos(t: RunTables) -> list[MetricInfo]:
    """The run's metrics, in run order, from the manifest."""
    out = []
    for m in t.metrics:
        rng = m.get("value_range") or [0.0, 1.0]
        hib, vr = bool(m.get("higher_is_better", True)), (float(rng[0]), float(rng[1]))
        out.append(MetricInfo(str(m.get("name")), str(m.get("display_name") or m.get("name")), str(m.get("category", "")),
                              hib, vr, bool(m.get("label_agnostic", False)), str(m.get("description") or ""),
                              str(m.get("score_mapping") or default_mapping(hib, vr))))
    return out


def scored_metric_infos(t: RunTables) -> list[MetricInfo]:
    """The run's metrics that have at least one stored score, in run order."""
    scored = {m for _, m in t.pair_slices}
    return [m for m in metric_infos(t) if m.name in scored]


def score_names(infos: Iterable[MetricInfo]) -> dict[str, str]:
    """{metric: the name of its [0, 1] score}."""
    return {m.name: m.score_name for m in infos}


def registry_info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of a registered metric (a view without a run: the live page)."""
    from ..metrics import METRICS

    meta = METRICS.get(name).metadata()
    rng = tuple(float(v) for v in (meta.get("value_range") or (0.0, 1.0)))
    hib = bool(meta.get("higher_is_better", True))
    return MetricInfo(name, str(meta.get("display_name") or name), str(meta.get("category", "")), hib, rng,
                      bool(meta.get("label_agnostic", False)), str(meta.get("description") or ""),
                      str(meta.get("score_mapping") or default_mapping(hib, rng)))


def registry_score_names(names: Iterable[str]) -> dict[str, str]:
    """{metric: the name of its [0, 1] score} of registered metrics."""
    return score_names(registry_info(n) for n in names)
