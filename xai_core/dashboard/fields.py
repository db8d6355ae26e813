"""The state of each page (its widgets, with defaults and what a URL may set), per run.

One function per page; the page restores these fields before drawing its widgets and
remembers them after (``pages/_common.py``), so its state is in the URL and survives a page
switch. Choices come from the run, so a link made on another run cannot select a label,
explainer or metric this run lacks.
"""

from __future__ import annotations

from ..labels import TAGS
from .assessment import LOCALISATION, LOCALISATION_TAGS, VALUES, metric_infos, quick_ranking, scored_metric_infos
from .counterfactual import CounterfactualFilter
from .overlay import (DISPLAYS, DIVERGING_CMAPS, HEATMAP_CLIP, OUTLINE_CLIP, OUTLINE_MASS, POLARITIES, SCALES,
                      SEQUENTIAL_CMAPS, OverlayStyle)
from .query import SORT_PROBABILITY, present_labels, score_choices, sort_options, std_range
from .state import Field
from .tables import RunTables

PAGE_SIZES = (12, 24, 48, 96)
ORDERS = ("descending", "ascending")
CLS_MODES = ("One explainer, several metrics", "One metric, several explainers")
MAX_DEFAULT_EXPLAINERS = 6  # map columns shown at first: all six of the photos run; they fit 1024 px
# Sorting by these scores starts with the tags they are meaningful for (issue 18: an ascending
# deletion sort began with TN labels at p = 0.003, whose maps explain nothing the model saw).
SORT_TAGS = {LOCALISATION: LOCALISATION_TAGS, "faithfulness": ("TP",)}


def default_explainers(t: RunTables) -> list[str]:
    """Every explainer up to :data:`MAX_DEFAULT_EXPLAINERS`; beyond that the best ranked ones
    (equal weights), in run order. Issue 18: the first 4 in run order hid occlusion, the
    photos run's best."""
    if len(t.explainers) <= MAX_DEFAULT_EXPLAINERS:
        return list(t.explainers)
    best = set(quick_ranking(t)[:MAX_DEFAULT_EXPLAINERS])
    return [e for e in t.explainers if e in best]


def sort_tags(t: RunTables, metric: str) -> tuple[str, ...]:
    """The tags a sort by ``metric``'s score starts with; () for every tag."""
    info = next((m for m in metric_infos(t) if m.name == metric), None)
    if info is None or info.label_agnostic:
        return ()
    return tuple(SORT_TAGS.get(info.category, ()))


def saliency_fields(t: RunTables) -> list[Field]:
    choices = score_choices(t)
    metrics = tuple(dict.fromkeys(m for ms in choices.values() for m in ms))
    style = OverlayStyle()
    out = [
        Field("sal_labels", [], "ints", tuple(present_labels(t))),
        Field("sal_prob", (0.0, 1.0), "range", lo=0.0, hi=1.0),
        Field("sal_tags", [], "strs", TAGS),
        Field("sal_sort", SORT_PROBABILITY, "str", tuple(sort_options(t))),
        Field("sal_sort_exp", next(iter(choices), ""), "str", tuple(choices)),
        Field("sal_sort_met", metrics[0] if metrics else "", "str", metrics),
        Field("sal_order", ORDERS[0], "str", ORDERS),
        Field("sal_page_size", PAGE_SIZES[0], "int", PAGE_SIZES),
        Field("sal_page", 1, "int"),
        Field("sal_explainers", default_explainers(t), "strs", tuple(t.explainers)),
        Field("sal_display", style.display, "str", tuple(DISPLAYS)),
        Field("sal_overlay", style.overlay, "bool"),
        Field("sal_opacity", style.opacity, "float", lo=0.0, hi=1.0),
        Field("sal_polarity", style.polarity, "str", POLARITIES),
        Field("sal_cmap_div", style.diverging_cmap, "str", DIVERGING_CMAPS),
        Field("sal_cmap_seq", style.cmap, "str", SEQUENTIAL_CMAPS),
        # One clip range per display: a heat map shows everything up to the 99.5th percentile;
        # outlines start from Vertex XAI's 62 / 99.9.
        Field("sal_clip", HEATMAP_CLIP, "range", lo=0.0, hi=100.0),
        Field("sal_clip_out", OUTLINE_CLIP, "range", lo=0.0, hi=100.0),
        Field("sal_mass", OUTLINE_MASS, "float", lo=1.0, hi=100.0),
        Field("sal_scale", style.scale, "str", tuple(SCALES)),
    ]
    if t.has_uncertainty:
        lo, hi = std_range(t)
        out.append(Field("sal_std", (lo, hi), "range", lo=lo, hi=hi))
    return out


def assessment_tag_fields(prefix: str) -> list[Field]:
    """The tag filter of both assessment pages: which (image, label) rows are averaged."""
    return [Field(f"{prefix}_tags", [], "strs", TAGS),
            Field(f"{prefix}_loc_tags", list(LOCALISATION_TAGS), "strs", TAGS)]


def comprehensive_fields(t: RunTables) -> list[Field]:
    # Weights are ratios: equal (1 each) by default, any value ≥ 0 (issue 12: no cap at 1).
    return ([Field(f"cmp_w_{m.name}", 1.0, "float", lo=0.0) for m in scored_metric_infos(t)]
            + assessment_tag_fields("cmp") + [Field("cmp_values", VALUES[0], "str", VALUES)])


def classification_fields(t: RunTables, classes: list[str], default_classes: list[str]) -> list[Field]:
    """``classes``: what the classes filter offers (the explained ones)."""
    infos = scored_metric_infos(t)
    label_metrics = [m.name for m in infos if not m.label_agnostic]
    return [
        Field("cls_mode", CLS_MODES[0], "str", CLS_MODES),
        Field("cls_explainer", t.explainers[0] if t.explainers else "", "str", tuple(t.explainers)),
        Field("cls_metrics", [m.name for m in infos], "strs", tuple(m.name for m in infos)),
        Field("cls_metric", label_metrics[0] if label_metrics else "", "str", tuple(label_metrics)),
        Field("cls_explainers", list(t.explainers), "strs", tuple(t.explainers)),
        Field("cls_classes", list(default_classes), "strs", tuple(classes)),
    ] + assessment_tag_fields("cls")


def counterfactual_fields(t: RunTables) -> list[Field]:
    d = CounterfactualFilter()
    return [
        Field("cf_labels", [], "ints", tuple(present_labels(t))),
        Field("cf_tags", [], "strs", TAGS),
        Field("cf_hide", d.only_with_result, "bool"),
        Field("cf_image", -1, "int"),          # −1: the first listed image
    ]


def effective_tags(selected) -> tuple[str, ...]:
    """Tag pills start empty, meaning every tag, so a click on one shows only that tag
    (issue 12: pills that started all selected hid the clicked tag)."""
    return tuple(selected) if selected else TAGS
