"""Saliency-page queries: filter, sort and page the images of a run.

Semantics (MindInsight's, ANCHORS.md §5, extended):
* an (image, label) row *passes* when its label is selected, its tag is selected, its
  probability is in range and (runs with MC-dropout uncertainty, when that filter is set)
  its standard deviation is in range; an image passes when any of its explained labels passes;
* an image's sort value is the max over its passing labels when sorting descending and the
  min when ascending (so "ascending score" surfaces the worst explanation an image has);
  images without a finite value sort last either way; ties keep sample order.

All of it is vectorised over the label rows of :class:`RunTables`; one query over 100,000
images takes a few milliseconds and copies nothing but boolean and float columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import XaiError
from ..labels import TAGS
from .assessment import metric_infos
from .tables import RunTables

SORT_PROBABILITY = "probability"
SORT_SCORE = "score"
SORT_UNCERTAINTY = "uncertainty"
SORT_ID = "sample id"


@dataclass(frozen=True)
class SaliencyFilter:
    labels: tuple[int, ...] = ()          # () means every label
    tags: tuple[str, ...] = TAGS
    prob_min: float = 0.0
    prob_max: float = 1.0
    std_min: float = 0.0                  # MC-dropout std range; the default (0, inf) filters nothing
    std_max: float = math.inf

    def __post_init__(self):
        if not self.prob_min <= self.prob_max:
            raise XaiError(f"probability range ({self.prob_min}, {self.prob_max}) is empty; expected min ≤ max")
        if not 0.0 <= self.std_min <= self.std_max:
            raise XaiError(f"uncertainty range ({self.std_min}, {self.std_max}) is invalid; expected 0 ≤ min ≤ max")

    @property
    def filters_std(self) -> bool:
        return self.std_min > 0.0 or self.std_max < math.inf


@dataclass(frozen=True)
class SortSpec:
    key: str = SORT_PROBABILITY
    descending: bool = True
    explainer: str = ""                   # SORT_SCORE only
    metric: str = ""


def sort_options(t: RunTables) -> list[str]:
    """What the run can be sorted by: "uncertainty" only when the run stores ``prob_std``."""
    opts = [SORT_PROBABILITY]
    if t.pair_slices:
        opts.append(SORT_SCORE)
    if t.has_uncertainty:
        opts.append(SORT_UNCERTAINTY)
    return opts + [SORT_ID]


def present_labels(t: RunTables) -> list[int]:
    """The labels explained in this run (class indices, in class order): what a label filter
    offers, rather than every class the model knows."""
    lab = t.lcol("label")
    return [int(l) for l in np.unique(lab[lab >= 0])]


def sort_caption(t: RunTables, sort: SortSpec, row: "ImageRow") -> str:
    """What the row's sort value is and whose it is: "gradcam · Deletion (1 − AUC) of red:
    0.977 (raw 0.023)" (the score's name says how it was mapped; the raw value follows when it
    differs); "" when the sort has no value to show (sample id, or no finite value)."""
    if sort.key == SORT_ID or not math.isfinite(row.value):
        return ""
    of = f" of {t.class_name(row.sort_label)}" if row.sort_label is not None else ""
    if sort.key == SORT_SCORE:
        info = next((m for m in metric_infos(t) if m.name == sort.metric), None)
        name = info.score_name if info else sort.metric
        if info is not None and info.label_agnostic:
            of = " (whole image)"
        raw = ""
        if info is not None and info.mapped:
            r = _value_at(t, t.pair_values(sort.explainer, sort.metric, "raw"), row)
            raw = f" (raw {r:.3f})" if math.isfinite(r) else ""
        return f"{sort.explainer} · {name}{of}: {row.value:.3f}{raw}"
    return f"{sort.key}{of}: {row.value:.3f}"


def _value_at(t: RunTables, column: np.ndarray, row: "ImageRow") -> float:
    """``column`` (one value per label row) at the row's sort label (nan when none)."""
    a, b = int(t.starts[row.pos]), int(t.starts[row.pos + 1])
    hit = np.flatnonzero(t.lcol("label")[a:b] == row.sort_label)
    return float(column[a + hit[0]]) if row.sort_label is not None and hit.size else float("nan")


def score_choices(t: RunTables) -> dict[str, list[str]]:
    """{explainer: [metrics]} that have scores, in the run's order."""
    order = {e: i for i, e in enumerate(t.explainers)}
    morder = {m.get("name"): i for i, m in enumerate(t.metrics)}
    out: dict[str, list[str]] = {}
    for e, m in sorted(t.pair_slices, key=lambda p: (order.get(p[0], len(order)), morder.get(p[1], len(morder)))):
        out.setdefault(e, []).append(m)
    return out


def _rows_mask(t: RunTables, flt: SaliencyFilter, *, use_tags: bool = True) -> np.ndarray:
    prob = t.lcol("prob")
    m = (prob >= flt.prob_min) & (prob <= flt.prob_max)
    if flt.labels:
        m &= np.isin(t.lcol("label"), np.asarray(flt.labels, dtype=np.int32))
    if flt.filters_std:
        if not t.has_uncertainty:
            raise XaiError(f"{t.run_dir}: this run has no uncertainty (no `prob_std` column); clear the uncertainty "
                           "filter or enable `uncertainty` in the run configuration")
        std = t.lcol("prob_std")  # NaN (a part without uncertainty) fails any set range
        m &= (std >= flt.std_min) & (std <= flt.std_max)
    if use_tags:
        codes = t.lcol("tag")
        wanted = [TAGS.index(x) for x in flt.tags if x in TAGS]
        m &= np.isin(codes, np.asarray(wanted, dtype=codes.dtype))
    return m


def std_range(t: RunTables) -> tuple[float, float]:
    """(0, max std rounded up to 0.01) for the uncertainty slider; (0, 0) without uncertainty."""
    if not t.has_uncertainty:
        return 0.0, 0.0
    std = t.lcol("prob_std")
    top = float(np.nanmax(std)) if np.isfinite(std).any() else 0.0
    return 0.0, max(0.01, math.ceil(round(top * 100.0, 4)) / 100.0)  # round: float32 0.15 is 0.1500000060


def tag_counts(t: RunTables, flt: SaliencyFilter) -> dict[str, int]:
    """(image, label) rows per tag among those passing the label and probability filters."""
    m = _rows_mask(t, flt, use_tags=False)
    codes = t.lcol("tag")[m]
    counts = np.bincount(codes[codes >= 0], minlength=len(TAGS))
    return {tag: int(counts[i]) for i, tag in enumerate(TAGS)}


def _reduce(t: RunTables, values: np.ndarray, how) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ufunc reduction of a label-row column; returns (nonempty positions, values)."""
    ne = np.flatnonzero(np.diff(t.starts) > 0)
    if not len(ne):
        return ne, values[:0]
    return ne, how.reduceat(values, t.starts[ne])


@dataclass(frozen=True)
class Selection:
    """Passing images in display order: ``order`` sample positions, ``value`` their sort
    value (NaN where none), ``rows`` the label-row pass mask used for the chips, ``lrow`` the
    label row the sort value comes from (−1 where none: sorting by id, or no finite value), so
    the page can show that label's maps and name it."""

    order: np.ndarray
    value: np.ndarray
    rows: np.ndarray
    lrow: np.ndarray | None = None

    @property
    def total(self) -> int:
        return int(len(self.order))


def select(t: RunTables, flt: SaliencyFilter, sort: SortSpec) -> Selection:
    """Filter then sort every image of the run."""
    rows = _rows_mask(t, flt)
    ne, passes = _reduce(t, rows, np.logical_or)
    pos = ne[passes]
    if sort.key == SORT_ID:
        rank = t.id_rank()[pos].astype(np.float64)
        key = -rank if sort.descending else rank
        value = np.full(len(pos), np.nan)
        lrow = np.full(len(pos), -1, np.int64)
    else:
        v = _sort_column(t, sort)
        ok = rows & np.isfinite(v)
        if sort.key == SORT_SCORE:
            ok = _tn_last(t, ok)
        fill = -np.inf if sort.descending else np.inf
        filled = np.where(ok, v, fill)
        _, agg = _reduce(t, filled, np.maximum if sort.descending else np.minimum)
        # The first passing row holding the image's value: whose label the value is.
        per_sample = np.full(t.n_samples, np.nan)
        per_sample[ne] = agg
        n_rows = len(filled)
        hit = ok & (filled == per_sample[t.lcol("pos")])
        _, first = _reduce(t, np.where(hit, np.arange(n_rows), n_rows), np.minimum)
        lrow = np.where(first < n_rows, first, -1)[passes]
        agg = agg[passes]
        value = np.where(np.isfinite(agg), agg, np.nan)
        # Missing values sort last in both directions; best first in a score sort, images known
        # only by a TN label (trivially "good", blank maps) come after those with a real one.
        key = np.where(np.isfinite(agg), -agg if sort.descending else agg, np.inf)
        if sort.key == SORT_SCORE and sort.descending and not _label_agnostic(t, sort.metric):
            tn = (lrow >= 0) & (t.lcol("tag")[np.maximum(lrow, 0)] == TAGS.index("TN"))
            return _ordered(pos, value, rows, lrow, np.lexsort((key, np.where(np.isfinite(agg), tn, 2))))
    order = np.argsort(key, kind="stable")
    return Selection(pos[order], value[order], rows, lrow[order])


def _label_agnostic(t: RunTables, metric: str) -> bool:
    return any(m.label_agnostic for m in metric_infos(t) if m.name == metric)


def _ordered(pos, value, rows, lrow, order) -> Selection:
    return Selection(pos[order], value[order], rows, lrow[order])


def _tn_last(t: RunTables, ok: np.ndarray) -> np.ndarray:
    """``ok`` without an image's TN rows where it has another passing row: a TN label (neither
    truth nor predicted) scores trivially well on faithfulness (deleting pixels of a class the
    model does not see changes nothing) and its map is blank, so a score sort names it only for
    an image that has nothing else."""
    other = ok & (t.lcol("tag") != TAGS.index("TN"))
    ne, has = _reduce(t, other, np.logical_or)
    per_sample = np.zeros(t.n_samples, bool)
    per_sample[ne] = has
    return np.where(per_sample[t.lcol("pos")], other, ok)


def _sort_column(t: RunTables, sort: SortSpec) -> np.ndarray:
    if sort.key == SORT_PROBABILITY:
        return t.lcol("prob")
    if sort.key == SORT_UNCERTAINTY:
        if not t.has_uncertainty:
            raise XaiError(f"{t.run_dir}: this run has no uncertainty (no `prob_std` column); sort by probability instead")
        return t.lcol("prob_std")
    if sort.key == SORT_SCORE:
        if (sort.explainer, sort.metric) not in t.pair_slices:
            raise XaiError(f"{t.run_dir}: no scores for explainer {sort.explainer!r} on metric {sort.metric!r}; "
                           f"expected one of {sorted(t.pair_slices)[:6]}")
        return t.pair_values(sort.explainer, sort.metric)
    raise XaiError(f"sort key {sort.key!r} unknown; expected one of {[SORT_PROBABILITY, SORT_SCORE, SORT_UNCERTAINTY, SORT_ID]}")


# ---- one page ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Chip:
    """One explained label of an image."""

    label: int
    name: str
    prob: float
    tag: str
    passes: bool
    part: int
    map_offset: int
    is_gt: bool
    std: float | None = None      # MC-dropout standard deviation and 95 % interval when the run has them
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None and math.isfinite(self.ci_low + self.ci_high)

    @property
    def text(self) -> str:
        """"7 · 0.912 [0.85–0.96]": name, probability and, with uncertainty, its 95 % interval.
        No-break spaces keep "name · p" and the interval whole: a narrow chip wraps between
        the two, never inside a number (issue 18)."""
        ci = f" [{self.ci_low:.2f}\u2060–\u2060{self.ci_high:.2f}]" if self.has_interval else ""  # word joiners
        return f"{self.name}\u00a0·\u00a0{self.prob:.3f}{ci}"

    @property
    def help(self) -> str | None:
        """The MC-dropout details, for a tooltip; None without uncertainty."""
        if self.std is None or not math.isfinite(self.std):
            return None
        ci = f"; 95 % interval [{self.ci_low:.3f}, {self.ci_high:.3f}]" if self.has_interval else ""
        return f"p = {self.prob:.3f}; MC-dropout standard deviation {self.std:.3f}{ci}"


@dataclass(frozen=True)
class ImageRow:
    pos: int
    sample_index: int
    sample_id: str
    part: int
    offset: int
    chips: tuple[Chip, ...]
    value: float
    sort_label: int | None = None   # the label the sort value belongs to (see Selection.lrow)

    def default_label(self) -> int | None:
        """The label the sort value belongs to, else the first passing label (highest
        probability), else the first explained one."""
        if self.sort_label is not None and self.chip(self.sort_label) is not None:
            return self.sort_label
        for c in self.chips:
            if c.passes:
                return c.label
        return self.chips[0].label if self.chips else None

    def chip(self, label: int | None) -> Chip | None:
        return next((c for c in self.chips if c.label == label), None)


@dataclass(frozen=True)
class PageView:
    total: int
    page: int
    n_pages: int
    page_size: int
    rows: tuple[ImageRow, ...]


def chips_of(t: RunTables, pos: int, rows_mask: np.ndarray | None = None) -> tuple[Chip, ...]:
    a, b = int(t.starts[pos]), int(t.starts[pos + 1])
    passes = rows_mask[a:b] if rows_mask is not None else np.ones(b - a, bool)
    unc = [t.lcol(c)[a:b] if c in t.labels.columns else [None] * (b - a) for c in ("prob_std", "ci_low", "ci_high")]
    return tuple(
        Chip(int(l), t.class_name(int(l)), float(p), TAGS[g] if g >= 0 else "?", bool(ok), int(pt), int(mo), bool(gt),
             *(None if u is None else float(u) for u in (sd, lo, hi)))
        for l, p, g, ok, pt, mo, gt, sd, lo, hi in zip(
            t.lcol("label")[a:b], t.lcol("prob")[a:b], t.lcol("tag")[a:b], passes, t.lcol("part")[a:b],
            t.lcol("map_offset")[a:b], t.lcol("is_gt")[a:b], *unc)
    )


def image_row(t: RunTables, pos: int, chips: tuple[Chip, ...], value: float, lrow: int = -1) -> ImageRow:
    return ImageRow(pos, int(t.scol("sample_index")[pos]), str(t.scol("sample_id")[pos]), int(t.scol("part")[pos]),
                    int(t.scol("offset")[pos]), chips, value, int(t.lcol("label")[lrow]) if lrow >= 0 else None)


def page_view(t: RunTables, sel: Selection, page: int, page_size: int) -> PageView:
    """Rows of page ``page`` (1-based, clamped to the last page)."""
    if page_size < 1:
        raise XaiError(f"page size is {page_size}; expected ≥ 1")
    n_pages = max(1, -(-sel.total // page_size))
    page = min(max(1, int(page)), n_pages)
    lo = (page - 1) * page_size
    lrows = sel.lrow if sel.lrow is not None else np.full(len(sel.order), -1)
    rows = tuple(image_row(t, int(pos), chips_of(t, int(pos), sel.rows), float(val), int(lr))
                 for pos, val, lr in zip(sel.order[lo: lo + page_size], sel.value[lo: lo + page_size],
                                         lrows[lo: lo + page_size]))
    return PageView(sel.total, page, n_pages, page_size, rows)
