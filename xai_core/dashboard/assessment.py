"""Aggregation of the scores table for the assessment pages (pure pandas / numpy).

* An explainer's score on a metric is the mean of the finite ``score`` values (the [0, 1],
  higher-is-better column) over its (image, label) results; NaN/inf results (a metric that
  does not apply, e.g. localisation without a box) are counted as skipped, not averaged
  (ANCHORS.md §3, "Aggregation").
* The 95 % interval of that mean is a percentile bootstrap (Efron & Tibshirani 1993, §13.3)
  with a fixed seed. Beyond ``EXACT_BOOTSTRAP_MAX`` values the bootstrap distribution of a
  mean of bounded values is normal to well under the displayed precision (central limit
  theorem), so the normal interval mean ± 1.96·s/√n is used and the method is reported.
* Comprehensive score = Σ wᵢ · meanᵢ over metrics with weights normalised to sum to 1
  (MindInsight asks the user to make them sum to 1; we normalise). A metric with no finite
  result for an explainer is left out and the remaining weights renormalised; the table
  says how many metrics each score used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ..errors import XaiError
from ..labels import TAGS
from .metric_info import MetricInfo, _pretty, default_mapping, metric_infos, scored_metric_infos  # noqa: F401 (re-exported)
from .tables import RunTables

EXACT_BOOTSTRAP_MAX = 5000
N_BOOT = 1000
# Localisation metrics ask whether a map points at the label's object: only meaningful for a
# label the model predicted and the image has (TP). FP/TN labels have no box (skipped anyway);
# FN labels do and would count the map of a class the model did not see (issue 12).
LOCALISATION = "localization"
LOCALISATION_TAGS = ("TP",)


@dataclass(frozen=True)
class RowFilter:
    """Which (image, label) results the aggregates average: ``tags`` for every label-specific
    metric, ``localisation_tags`` for localisation metrics. Empty means every tag.
    Label-agnostic results (one per image) are always counted."""

    tags: tuple[str, ...] = ()
    localisation_tags: tuple[str, ...] = LOCALISATION_TAGS

    def allowed(self, category: str) -> tuple[str, ...]:
        wanted = self.localisation_tags if category == LOCALISATION else self.tags
        return tuple(wanted) or TAGS

    @property
    def text(self) -> str:
        every = "every tag"
        return (f"label-specific results of {', '.join(self.tags) or every}; localisation metrics "
                f"{', '.join(self.localisation_tags) or every}; label-agnostic metrics: every image")


ALL_ROWS = RowFilter((), ())


def row_mask(t: RunTables, metric: MetricInfo, sl: slice, flt: RowFilter) -> np.ndarray:
    """(rows of ``sl``,) bool: the score rows of one pair that ``flt`` keeps."""
    lrow = t.scores["lrow"].to_numpy()[sl]
    allowed = flt.allowed(metric.category)
    if set(allowed) >= set(TAGS):
        return np.ones(len(lrow), bool)
    codes = np.where(lrow >= 0, t.lcol("tag")[np.maximum(lrow, 0)], -1)
    return (lrow < 0) | np.isin(codes, [TAGS.index(x) for x in allowed])


def quick_ranking(t: RunTables, rows_filter: "RowFilter | None" = None) -> list[str]:
    """The run's explainers, best first, by the equal-weight comprehensive score of their mean
    scores (no intervals, so cheap enough for a page's defaults); unscored ones last."""
    rows_filter = rows_filter or RowFilter()
    infos = {m.name: m for m in metric_infos(t)}
    score = t.scores["score"].to_numpy()
    means: dict[str, list[float]] = {}
    for (e, m), sl in t.pair_slices.items():
        info = infos.get(m) or MetricInfo(m, m, "", True, (0.0, 1.0), False)
        s = score[sl][row_mask(t, info, sl, rows_filter)]
        s = s[np.isfinite(s)]
        if s.size:
            means.setdefault(e, []).append(float(s.mean()))
    overall = {e: float(np.mean(v)) for e, v in means.items()}
    order = {e: i for i, e in enumerate(t.explainers)}
    return sorted(t.explainers, key=lambda e: (-overall.get(e, -np.inf), order[e]))


def metrics_frame(infos: list[MetricInfo]) -> pd.DataFrame:
    """One row per metric: what its raw value means and how it was mapped to [0, 1]."""
    return pd.DataFrame({
        "metric": [m.name for m in infos],
        "name": [m.display_name for m in infos],
        "category": [m.category for m in infos],
        "direction (raw)": [m.direction for m in infos],
        "raw range": [f"[{m.value_range[0]:g}, {m.value_range[1]:g}]" for m in infos],
        "mapping to [0, 1]": [_pretty(m.mapping) for m in infos],
        "score shown as": [m.score_name for m in infos],
        "per": ["image" if m.label_agnostic else "image × label" for m in infos],
    })


def bootstrap_ci(values: np.ndarray, *, n_boot: int = N_BOOT, level: float = 0.95, seed: int = 0,
                 exact_max: int = EXACT_BOOTSTRAP_MAX) -> tuple[float, float, str]:
    """(low, high, method) interval of the mean of finite ``values`` (1-D)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return float("nan"), float("nan"), "none"
    if n == 1:
        return float(v[0]), float(v[0]), "single value"
    alpha = (1.0 - level) / 2.0
    if n > exact_max:
        half = 1.959963984540054 * v.std(ddof=1) / np.sqrt(n)
        return float(v.mean() - half), float(v.mean() + half), "normal"
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // n)  # bound the (step, n) index block to ~16 MB
    for a in range(0, n_boot, step):
        b = min(n_boot, a + step)
        means[a:b] = v[rng.integers(0, n, size=(b - a, n))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi), "bootstrap"


def explainer_metric_table(t: RunTables, *, n_boot: int = N_BOOT, seed: int = 0,
                           rows_filter: RowFilter = ALL_ROWS) -> pd.DataFrame:
    """Long table, one row per explainer × metric present in the run: ``n`` finite results,
    ``skipped`` non-finite ones (``model_nan`` of them because the model's outputs were not
    finite, the rest because the metric does not apply), ``mean`` of the [0, 1] score, ``ci_low``/``ci_high``,
    ``ci_method``, ``raw_mean`` (finite raw values, in the metric's own units); over the
    results ``rows_filter`` keeps."""
    rows = []
    for e in t.explainers:
        for m in metric_infos(t):
            sl = t.pair_slices.get((e, m.name))
            if sl is None:
                continue
            part = t.scores.iloc[sl][row_mask(t, m, sl, rows_filter)]
            s = part["score"].to_numpy()
            raw = part["raw"].to_numpy()
            fin = np.isfinite(s)
            lo, hi, how = bootstrap_ci(s[fin], n_boot=n_boot, seed=seed)
            fr = np.isfinite(raw)
            model_nan = int(part["nan_reason"].notna().sum()) if "nan_reason" in part else 0
            rows.append({"explainer": e, "metric": m.name, "n": int(fin.sum()), "skipped": int((~fin).sum()),
                         "model_nan": model_nan,
                         "mean": float(s[fin].mean()) if fin.any() else float("nan"), "ci_low": lo, "ci_high": hi,
                         "ci_method": how, "raw_mean": float(raw[fr].mean()) if fr.any() else float("nan")})
    cols = ["explainer", "metric", "n", "skipped", "model_nan", "mean", "ci_low", "ci_high", "ci_method", "raw_mean"]
    return pd.DataFrame(rows, columns=cols)


def normalise_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Weights divided by their sum; XaiError when one is negative or all are zero."""
    w = {k: float(v) for k, v in weights.items()}
    bad = [k for k, v in w.items() if not np.isfinite(v) or v < 0]
    if bad:
        raise XaiError(f"metric weights must be finite and ≥ 0; got {', '.join(f'{k}={w[k]}' for k in bad)}")
    top = max(w.values(), default=0.0)
    if top <= 0:
        raise XaiError("every metric weight is 0; give at least one metric a positive weight")
    # Scaled by the largest first: a sum of weights near the float maximum (1e308 + 1e308)
    # would overflow to inf and make every weight 0.
    scaled = {k: v / top for k, v in w.items()}
    total = sum(scaled.values())
    return {k: v / total for k, v in scaled.items()}


def comprehensive(long: pd.DataFrame, weights: Mapping[str, float]) -> pd.DataFrame:
    """One row per explainer: ``score`` = Σ wᵢ · meanᵢ (weights normalised over the metrics
    that have a finite mean for that explainer), ``metrics_used``, ``rank`` (1 = best)."""
    w = normalise_weights(weights)
    rows = []
    for e, g in long.groupby("explainer", sort=False):
        means = dict(zip(g["metric"], g["mean"]))
        use = {m: wi for m, wi in w.items() if wi > 0 and np.isfinite(means.get(m, np.nan))}
        tot = sum(use.values())
        score = sum(wi * means[m] for m, wi in use.items()) / tot if tot > 0 else float("nan")
        rows.append({"explainer": e, "score": score, "metrics_used": f"{len(use)}/{sum(1 for v in w.values() if v > 0)}"})
    out = pd.DataFrame(rows, columns=["explainer", "score", "metrics_used"])
    out["rank"] = out["score"].rank(ascending=False, method="min").astype("Int64")
    return out.sort_values(["rank", "explainer"], na_position="last").reset_index(drop=True)


def sanity_column(manifest: dict) -> dict[str, str]:
    """{explainer: "passed (similarity 0.12)"} from the manifest's randomisation check, or {}
    when the run has none."""
    san = manifest.get("sanity")
    if not isinstance(san, dict):
        return {}
    out = {}
    for e, r in san.items():
        if not isinstance(r, dict):
            continue
        verdict = "passed" if r.get("passed") else "FAILED"
        sim = r.get("final_similarity")
        out[str(e)] = f"{verdict} (similarity {sim:.3f})" if isinstance(sim, (int, float)) else verdict
    return out


def assessment_table(t: RunTables, long: pd.DataFrame, weights: Mapping[str, float],
                     axioms: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The comprehensive-assessment table, one row per explainer (rank order): per metric
    its mean, 95 % interval, results used, skipped count and normalised weight, then the sanity
    verdict when the run has one, and ``axioms`` ({explainer: verdict}, ``notes.axiom_column``)
    when given. Numeric columns, so the CSV keeps full precision."""
    comp = comprehensive(long, weights)
    table = comp[["rank", "explainer", "score", "metrics_used"]].rename(columns={"score": "comprehensive"})
    for m in metric_infos(t):
        g = long[long["metric"] == m.name].set_index("explainer")
        for col, src in (("mean", "mean"), ("ci_low", "ci_low"), ("ci_high", "ci_high"), ("n", "n"), ("skipped", "skipped"),
                         ("raw_mean", "raw_mean"), ("model n/a", "model_nan")):
            table[f"{m.name} {col}"] = table["explainer"].map(g[src]) if len(g) else np.nan
    # The weights used, normalised, so a downloaded table says how its score was made.
    norm = normalise_weights(weights)
    for m in metric_infos(t):
        if m.name in norm:
            table[f"{m.name} weight"] = norm[m.name]
    san = sanity_column(t.manifest)
    if san:
        table["sanity"] = table["explainer"].map(san).fillna("not checked")
    if axioms:
        table["axioms"] = table["explainer"].map(dict(axioms)).fillna("ok")
    return table


def per_class(t: RunTables, rows_filter: RowFilter = ALL_ROWS) -> pd.DataFrame:
    """Per class: mean [0, 1] score and finite count per explainer × metric. Label-specific
    metrics are grouped by the explained label; label-agnostic ones by the image's argmax
    class, the class they explain. Columns: explainer, metric, label, class, n, mean."""
    k = len(t.classes)
    pred = t.predicted_class()
    infos = {m.name: m for m in metric_infos(t)}
    rows = []
    for (e, m), sl in t.pair_slices.items():
        info = infos.get(m) or MetricInfo(m, m, "", True, (0.0, 1.0), False)
        part = t.scores.iloc[sl][row_mask(t, info, sl, rows_filter)]
        lab = part["label"].to_numpy().astype(np.int64)
        agn = lab < 0
        if agn.any():
            lab = np.where(agn, pred[part["pos"].to_numpy()], lab)
        s = part["score"].to_numpy()
        fin = np.isfinite(s) & (lab >= 0) & (lab < max(k, 1))
        n = np.bincount(lab[fin], minlength=k)
        tot = np.bincount(lab[fin], weights=s[fin], minlength=k)
        for c in range(k):
            rows.append((e, m, c, t.class_name(c), int(n[c]), tot[c] / n[c] if n[c] else np.nan))
    return pd.DataFrame(rows, columns=["explainer", "metric", "label", "class", "n", "mean"])


def class_counts(t: RunTables) -> pd.DataFrame:
    """Per class: images with it as ground truth, explained (image, label) rows, and rows per tag."""
    k = len(t.classes)
    lab = t.labels
    labels = lab["label"].to_numpy()
    ok = (labels >= 0) & (labels < k)
    out = pd.DataFrame({"label": np.arange(k), "class": t.classes})
    out["explained"] = np.bincount(labels[ok], minlength=k)
    gt = t.extra["gt_labels"].combine_chunks().flatten().to_numpy(zero_copy_only=False) if t.n_samples else np.zeros(0, int)
    gt = gt[(gt >= 0) & (gt < k)]
    out["ground truth images"] = np.bincount(gt.astype(np.int64), minlength=k)
    codes = lab["tag"].cat.codes.to_numpy()
    for i, tag in enumerate(lab["tag"].cat.categories):
        sel = ok & (codes == i)
        out[tag] = np.bincount(labels[sel], minlength=k)
    return out


def class_bars_frame(pc: pd.DataFrame, *, explainer: str | None = None, metric: str | None = None) -> pd.DataFrame:
    """Rows of :func:`per_class` for one explainer × every metric, or one metric × every
    explainer; exactly one of the two must be given."""
    if (explainer is None) == (metric is None):
        raise XaiError("give either one explainer (compare metrics) or one metric (compare explainers)")
    return pc[pc["explainer"] == explainer] if explainer is not None else pc[pc["metric"] == metric]


MISSING = "—"


VALUES = ("score", "raw")  # what the scores table shows: the [0, 1] scores or the raw means


def display_table(table: pd.DataFrame, infos: list[MetricInfo], *, values: str = "score",
                  flagged: frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
    """:func:`assessment_table` for the page, narrow enough for a 1440 px screen with seven
    explainers and eight metrics (issue 12): rank, explainer, comprehensive score, one column
    per metric (numbers, NaN where none), metrics used and the sanity verdict. ``values``
    "score": the mean [0, 1] score, headed by its score name ("Deletion (1 − AUC)"); "raw":
    the mean raw value in the metric's own units and direction. Metrics in ``flagged`` (see
    :func:`flags`) are marked "⚠". The intervals are in :func:`interval_table`, the
    directions and mappings in :func:`metrics_frame`."""
    if values not in VALUES:
        raise XaiError(f"table values {values!r} unknown; expected one of {VALUES}")
    out = table[["rank", "explainer", "comprehensive"]].copy()
    for m in infos:
        col = f"{m.name} {'mean' if values == 'score' else 'raw_mean'}"
        if col in table:
            name = m.score_name if values == "score" else f"{m.display_name} (raw, {m.direction.split()[0]} better)"
            out[name + (" ⚠" if m.name in flagged else "")] = table[col].to_numpy(dtype=np.float64)
    out["metrics used"] = table["metrics_used"]
    if "sanity" in table:
        out["sanity"] = [str(v).replace("similarity ", "") for v in table["sanity"]]
    if "axioms" in table:
        out["axioms"] = table["axioms"]
    return out


# ---- flags: what the numbers must not be read without ------------------------------------------
# One structure for every warning the assessment attaches to a metric or an explainer, so the
# pages show them in one place. Kinds so far: "uninformative" (a metric on which the random
# reference scores as well as the best explainer on this run).
@dataclass(frozen=True)
class Flag:
    kind: str
    text: str
    metric: str | None = None      # metric name the flag is about (None: every metric)
    explainer: str | None = None   # explainer instance it is about (None: the metric as a whole)


REFERENCE_TYPES = ("random",)  # explainers that know nothing about the model: a floor to beat


def reference_explainers(t: RunTables) -> list[str]:
    """Instance names of the run's reference explainers (type ``random``)."""
    return [str(e.get("name")) for e in t.manifest.get("explainers", [])
            if isinstance(e, dict) and str(e.get("type") or e.get("name")) in REFERENCE_TYPES]


UNINFORMATIVE_MARGIN = 0.02  # a reference within this much of the best [0, 1] score ties with it


def uninformative_flags(t: RunTables, long: pd.DataFrame) -> list[Flag]:
    """Metrics that do not tell the explainers from chance on this run: the best random
    reference's mean score is within :data:`UNINFORMATIVE_MARGIN` of the best other explainer's
    (or above it), e.g. localisation when the objects' boxes cover the whole image, where a
    random map points inside them too (issue 18)."""
    refs = set(reference_explainers(t))
    out = []
    if not refs or long.empty:
        return out
    names = {m.name: m.score_name for m in metric_infos(t)}
    for m, g in long.groupby("metric", sort=False):
        g = g[np.isfinite(g["mean"].to_numpy(dtype=np.float64))]
        ref, other = g[g["explainer"].isin(refs)], g[~g["explainer"].isin(refs)]
        if ref.empty or other.empty:
            continue
        r = ref.loc[ref["mean"].idxmax()]
        best = other.loc[other["mean"].idxmax()]
        if r["mean"] >= best["mean"] - UNINFORMATIVE_MARGIN:
            ci = (f", 95 % interval [{best['ci_low']:.3f}, {best['ci_high']:.3f}]" if np.isfinite(best["ci_low"]) else "")
            out.append(Flag("uninformative", (
                f"{names.get(m, m)} is uninformative on this run: the random reference {r['explainer']} scores "
                f"{r['mean']:.3f}, as well as the best explainer ({best['explainer']} {best['mean']:.3f}{ci}). It ranks "
                "no explainer above chance; consider a weight of 0."), metric=str(m)))
    return out


def flags(t: RunTables, long: pd.DataFrame) -> list[Flag]:
    """Every flag of the assessment of ``long`` (:func:`explainer_metric_table`)."""
    return uninformative_flags(t, long)


def interval_table(table: pd.DataFrame, infos: list[MetricInfo]) -> pd.DataFrame:
    """One row per explainer × metric: mean, 95 % interval, results used and skipped, as text
    (— where a metric has no result for that explainer)."""
    rows = []
    for m in infos:
        if f"{m.name} mean" not in table:
            continue
        for e, mean, lo, hi, n, sk, bad in zip(table["explainer"], table[f"{m.name} mean"], table[f"{m.name} ci_low"],
                                               table[f"{m.name} ci_high"], table.get(f"{m.name} n", [np.nan] * len(table)),
                                               table[f"{m.name} skipped"],
                                               table.get(f"{m.name} model n/a", [np.nan] * len(table))):
            ok = np.isfinite(mean)
            # Scores the model's non-finite outputs spoiled are not "does not apply": said so.
            why = f" ({int(bad)}: the model returned non-finite outputs)" if bad == bad and bad else ""
            rows.append({"explainer": e, "metric": m.score_name, "mean": f"{mean:.3f}" if ok else MISSING,
                         "95 % interval": f"[{lo:.3f}, {hi:.3f}]" if ok and np.isfinite(lo) else MISSING,
                         "results": MISSING if n != n else str(int(n)),
                         "skipped": MISSING if sk != sk else str(int(sk)) + why})
    return pd.DataFrame(rows, columns=["explainer", "metric", "mean", "95 % interval", "results", "skipped"])
