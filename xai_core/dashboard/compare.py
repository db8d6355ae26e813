"""Two runs side by side ("Compare runs"): matched by sample id, where their predictions and
tags differ, their maps on one colour scale, and per-metric score differences with bootstrap
intervals (pure pandas / numpy; the page renders what this returns).

Matching. Samples are matched by ``sample_id`` (two checkpoints or two models on the same
dataset, or one model with other explainer settings); labels by class *name*, so runs whose
class lists differ in order still line up. The compared label rows are every (sample, label)
explained in either run. A label one run did not explain was neither ground truth nor
predicted there (explained = ground truth ∪ predicted ∪ top-k), so its tag there is TN; the
row says that it was not explained (no map, no score).

Score differences are paired: for one explainer × metric, the [0, 1] scores (higher is better)
of the label rows both runs scored, B − A per row, and the percentile bootstrap of the mean
difference (the assessment's :func:`~.assessment.bootstrap_ci`, resampling pairs). An
interval that excludes 0 says which run's explanations are better beyond resampling noise.
"""

from __future__ import annotations

import json

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import XaiError
from ..labels import TAGS
from .assessment import LOCALISATION_TAGS, RowFilter, bootstrap_ci, metric_infos
from .predictions import classification_summary, gt_matrix, probs_matrix
from .tables import RunTables

NOT_IN_RUN = "—"          # the class does not exist in that run's model
TAG_CHOICES = TAGS        # what the tag filters offer
VERDICTS = ("B better", "A better", "within noise", "equal", "no common results")


class CompareError(XaiError):
    """Two runs cannot be compared (no common samples, no common classes)."""


@dataclass(eq=False)
class Comparison:
    """Two runs matched by sample id. ``rows``: one per (matched sample, label) explained in
    either run — columns ``m`` (index into the matched samples), ``sample_id``, ``label`` (A's
    class index), ``class``, ``tag_a``/``tag_b``, ``explained_a``/``explained_b``,
    ``prob_a``/``prob_b``, ``lrow_a``/``lrow_b`` (row of each run's labels table, −1 where not
    explained), ``changed`` (the tags differ)."""

    a: RunTables
    b: RunTables
    name_a: str
    name_b: str
    ids: np.ndarray            # matched sample ids, in A's order
    pos_a: np.ndarray          # their sample positions in A and in B
    pos_b: np.ndarray
    only_a: int                # samples of A that B lacks, and the reverse
    only_b: int
    gt_differs: int            # matched samples whose ground truth differs (other datasets?)
    rows: pd.DataFrame

    @property
    def n_matched(self) -> int:
        return len(self.ids)

    def summary(self) -> str:
        text = (f"{self.n_matched} common samples (A: {self.a.n_samples}, B: {self.b.n_samples}); "
                f"{len(self.rows)} labels explained in either run, {int(self.rows['changed'].sum())} with another tag")
        if self.gt_differs:
            text += (f"; {self.gt_differs} samples have a different ground truth in the two runs: "
                     "are they over the same dataset?")
        return text


def dataset_key(run_dir) -> tuple:
    """What identifies a run's dataset (path, split, sha256 of its manifest), for ordering the
    candidates for run B: runs over the same dataset share samples. () when unreadable."""
    from ..summary.reader import read_manifest

    try:
        ds = read_manifest(run_dir).get("dataset") or {}
    except (XaiError, OSError):
        return ()
    return (str(ds.get("path")), str(ds.get("split")), str(ds.get("sha256"))) if isinstance(ds, dict) else ()


def _class_map(a: RunTables, b: RunTables) -> np.ndarray:
    """(n_classes of A,) index of each A class in B by name, −1 where B lacks it."""
    idx = {c: i for i, c in enumerate(b.classes)}
    return np.array([idx.get(c, -1) for c in a.classes], dtype=np.int64)


def compare(a: RunTables, b: RunTables, name_a: str = "A", name_b: str = "B") -> Comparison:
    """Match two runs; raises :class:`CompareError` when they share no sample id or no class."""
    ids_a, ids_b = a.scol("sample_id"), b.scol("sample_id")
    where_b = {s: i for i, s in enumerate(ids_b)}
    pa = np.array([i for i, s in enumerate(ids_a) if s in where_b], dtype=np.int64)
    if not len(pa):
        raise CompareError(f"runs {name_a!r} and {name_b!r} have no sample id in common ({a.n_samples} and "
                           f"{b.n_samples} samples); compare two runs over the same dataset")
    pb = np.array([where_b[ids_a[i]] for i in pa], dtype=np.int64)
    a2b = _class_map(a, b)
    if not (a2b >= 0).any():
        raise CompareError(f"runs {name_a!r} and {name_b!r} have no class name in common; expected two models "
                           "of the same classes")
    ka = len(a.classes)
    m_of_a = np.full(a.n_samples, -1, np.int64)
    m_of_a[pa] = np.arange(len(pa))
    m_of_b = np.full(b.n_samples, -1, np.int64)
    m_of_b[pb] = np.arange(len(pb))
    b2a = np.full(len(b.classes), -1, np.int64)
    b2a[a2b[a2b >= 0]] = np.flatnonzero(a2b >= 0)

    # (matched sample, A label) keys of the label rows of each run
    la_m = m_of_a[a.labels["pos"].to_numpy()]
    la_l = a.lcol("label").astype(np.int64)
    ok_a = (la_m >= 0) & (la_l >= 0) & (la_l < ka)
    lb_m = m_of_b[b.labels["pos"].to_numpy()]
    lb_raw = b.lcol("label").astype(np.int64)
    lb_l = np.where((lb_raw >= 0) & (lb_raw < len(b2a)), b2a[np.clip(lb_raw, 0, max(len(b2a) - 1, 0))], -1)
    ok_b = (lb_m >= 0) & (lb_l >= 0)
    key_a = la_m[ok_a] * ka + la_l[ok_a]
    key_b = lb_m[ok_b] * ka + lb_l[ok_b]
    keys = np.union1d(key_a, key_b)
    lrow_a = np.full(len(keys), -1, np.int64)
    lrow_a[np.searchsorted(keys, key_a)] = np.flatnonzero(ok_a)
    lrow_b = np.full(len(keys), -1, np.int64)
    lrow_b[np.searchsorted(keys, key_b)] = np.flatnonzero(ok_b)
    m, label = keys // ka, keys % ka

    def tags(t, lrow, present):
        codes = t.lcol("tag")
        out = np.where(lrow >= 0, np.asarray(TAGS, dtype=object)[np.maximum(codes[np.maximum(lrow, 0)], 0)], "TN")
        return np.where(present, out, NOT_IN_RUN)

    in_b = a2b[label] >= 0
    tag_a = tags(a, lrow_a, np.ones(len(keys), bool))
    tag_b = tags(b, lrow_b, in_b)
    prob_a = probs_matrix(a)[pa[m], label]
    prob_b = np.where(in_b, probs_matrix(b)[pb[m], np.maximum(a2b[label], 0)], np.nan)
    rows = pd.DataFrame({
        "m": m, "sample_id": ids_a[pa[m]].astype(str), "label": label,
        "class": np.asarray(a.classes, dtype=object)[label] if ka else np.zeros(0, object),
        "tag_a": tag_a, "tag_b": tag_b, "explained_a": lrow_a >= 0, "explained_b": lrow_b >= 0,
        "prob_a": prob_a, "prob_b": prob_b, "lrow_a": lrow_a, "lrow_b": lrow_b,
        "changed": tag_a != tag_b,
    })
    ga, gb = gt_matrix(a)[pa], gt_matrix(b)[pb]
    common = a2b >= 0
    gt_differs = int((ga[:, common] != gb[:, a2b[common]]).any(1).sum())
    return Comparison(a, b, name_a, name_b, ids_a[pa].astype(str), pa, pb, a.n_samples - len(pa),
                      b.n_samples - len(pb), gt_differs, rows)


def transitions(cmp: Comparison) -> pd.DataFrame:
    """Counts of label rows by tag in A (rows) × tag in B (columns)."""
    cols = list(TAGS) + ([NOT_IN_RUN] if (cmp.rows["tag_b"] == NOT_IN_RUN).any() else [])
    ct = pd.crosstab(pd.Categorical(cmp.rows["tag_a"], categories=list(TAGS)),
                     pd.Categorical(cmp.rows["tag_b"], categories=cols), dropna=False)
    ct.index = [f"A: {t}" for t in ct.index]
    ct.columns = [f"B: {t}" for t in ct.columns]
    return ct


def classification_frame(cmp: Comparison) -> pd.DataFrame:
    """Classification metrics of A and B over the common samples, and B − A."""
    sa = classification_summary(cmp.a, cmp.pos_a)
    sb = classification_summary(cmp.b, cmp.pos_b)
    names = [k for k in sa if k != "images"]
    va = np.array([sa[k] for k in names], dtype=np.float64)
    vb = np.array([sb.get(k, np.nan) for k in names], dtype=np.float64)
    return pd.DataFrame({"A": va, "B": vb, "B − A": vb - va}, index=names)


@dataclass(frozen=True)
class RowsFilter:
    """Which matched label rows the table lists: tags in A, tags in B (empty = every tag),
    labels (A's class indices; empty = every label), and only rows whose tags differ."""

    tags_a: tuple[str, ...] = ()
    tags_b: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    changed_only: bool = True

    @property
    def text(self) -> str:
        a = "/".join(self.tags_a) or "any tag"
        b = "/".join(self.tags_b) or "any tag"
        return f"{a} in A, {b} in B" + (", tags differ" if self.changed_only else "")


def filter_rows(cmp: Comparison, flt: RowsFilter) -> pd.DataFrame:
    """The rows of :attr:`Comparison.rows` that ``flt`` keeps, largest |Δp| first."""
    r = cmp.rows
    keep = np.ones(len(r), bool)
    if flt.tags_a:
        keep &= r["tag_a"].isin(flt.tags_a).to_numpy()
    if flt.tags_b:
        keep &= r["tag_b"].isin(flt.tags_b).to_numpy()
    if flt.labels:
        keep &= r["label"].isin(flt.labels).to_numpy()
    if flt.changed_only:
        keep &= r["changed"].to_numpy()
    out = r[keep]
    d = (out["prob_b"] - out["prob_a"]).abs().fillna(-1.0)
    return out.iloc[np.argsort(-d.to_numpy(), kind="stable")]


def rows_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's table of matched rows: sample, class, tags and probabilities in A and B."""
    def tag(t, explained):
        return [f"{x}" if e or x == NOT_IN_RUN else f"{x} (not explained)" for x, e in zip(t, explained)]

    return pd.DataFrame({
        "sample": rows["sample_id"].to_numpy(), "class": rows["class"].to_numpy(),
        "tag A": tag(rows["tag_a"], rows["explained_a"]), "tag B": tag(rows["tag_b"], rows["explained_b"]),
        "p A": rows["prob_a"].to_numpy(), "p B": rows["prob_b"].to_numpy(),
        "Δp (B − A)": (rows["prob_b"] - rows["prob_a"]).to_numpy(),
    })


def row_caption(row) -> str:
    """"s001 · 3 · TP → FN (p 0.91 → 0.32)": one matched row, for a picker."""
    pb = f"{row.prob_b:.2f}" if np.isfinite(row.prob_b) else NOT_IN_RUN
    return f"{row.sample_id} · {row['class']} · {row.tag_a} → {row.tag_b} (p {row.prob_a:.2f} → {pb})"


# ---- score differences ------------------------------------------------------------------------
def explainer_pairs(cmp: Comparison) -> list[tuple[str, str]]:
    """Explainers of the same instance name in both runs, in A's order."""
    names_b = set(cmp.b.explainers)
    return [(e, e) for e in cmp.a.explainers if e in names_b]


def _per_sample(t: RunTables, explainer: str, metric: str) -> np.ndarray:
    """(n_samples,) [0, 1] score of a label-agnostic metric, NaN where absent."""
    out = np.full(t.n_samples, np.nan)
    sl = t.pair_slices.get((explainer, metric))
    if sl is not None:
        part = t.scores.iloc[sl]
        agn = part["lrow"].to_numpy() < 0
        out[part["pos"].to_numpy()[agn]] = part["score"].to_numpy()[agn]
    return out


def _verdict(d: np.ndarray, lo: float, hi: float) -> str:
    if not len(d):
        return "no common results"
    if np.all(d == 0):
        return "equal"
    if lo > 0:
        return "B better"
    if hi < 0:
        return "A better"
    return "within noise"


def score_differences(cmp: Comparison, pairs: Sequence[tuple[str, str]] | None = None, *,
                      rows_filter: RowFilter = RowFilter((), LOCALISATION_TAGS), seed: int = 0) -> pd.DataFrame:
    """One row per explainer pair × metric scored in both runs: ``n`` paired results, ``mean_a``,
    ``mean_b`` over those pairs, ``diff`` = mean of B − A, its 95 % bootstrap interval
    (``ci_low``, ``ci_high``, ``ci_method``) and a ``verdict``. A label row counts when its tag
    passes ``rows_filter`` in both runs (localisation metrics: TP in both by default)."""
    pairs = explainer_pairs(cmp) if pairs is None else list(pairs)
    infos_b = {m.name for m in metric_infos(cmp.b)}
    r = cmp.rows
    both = (r["lrow_a"].to_numpy() >= 0) & (r["lrow_b"].to_numpy() >= 0)
    out = []
    for ea, eb in pairs:
        for info in metric_infos(cmp.a):
            if info.name not in infos_b or (ea, info.name) not in cmp.a.pair_slices \
                    or (eb, info.name) not in cmp.b.pair_slices:
                continue
            if info.label_agnostic:
                va = _per_sample(cmp.a, ea, info.name)[cmp.pos_a]
                vb = _per_sample(cmp.b, eb, info.name)[cmp.pos_b]
            else:
                allowed = rows_filter.allowed(info.category)
                keep = both & r["tag_a"].isin(allowed).to_numpy() & r["tag_b"].isin(allowed).to_numpy()
                va = cmp.a.pair_values(ea, info.name)[r["lrow_a"].to_numpy()[keep]]
                vb = cmp.b.pair_values(eb, info.name)[r["lrow_b"].to_numpy()[keep]]
            fin = np.isfinite(va) & np.isfinite(vb)
            d = vb[fin] - va[fin]
            lo, hi, how = bootstrap_ci(d, seed=seed)
            out.append({"explainer": ea if ea == eb else f"{ea} / {eb}", "explainer_a": ea, "explainer_b": eb,
                        "metric": info.name, "metric_name": info.score_name, "n": int(fin.sum()),
                        "mean_a": float(va[fin].mean()) if fin.any() else np.nan,
                        "mean_b": float(vb[fin].mean()) if fin.any() else np.nan,
                        "diff": float(d.mean()) if len(d) else np.nan, "ci_low": lo, "ci_high": hi,
                        "ci_method": how, "verdict": _verdict(d, lo, hi)})
    cols = ["explainer", "explainer_a", "explainer_b", "metric", "metric_name", "n", "mean_a", "mean_b", "diff",
            "ci_low", "ci_high", "ci_method", "verdict"]
    return pd.DataFrame(out, columns=cols)


def differences_frame(diffs: pd.DataFrame) -> pd.DataFrame:
    """:func:`score_differences` for the page: text interval, numbers kept for sorting."""
    return pd.DataFrame({
        "explainer": diffs["explainer"], "metric": diffs["metric_name"], "pairs": diffs["n"],
        "mean A": diffs["mean_a"], "mean B": diffs["mean_b"], "B − A": diffs["diff"],
        "95 % interval": [f"[{lo:+.3f}, {hi:+.3f}]" if np.isfinite(lo) else NOT_IN_RUN
                          for lo, hi in zip(diffs["ci_low"], diffs["ci_high"])],
        "verdict": diffs["verdict"],
    })


def _flat(obj, prefix: str = "") -> dict[str, str]:
    """{dotted key: value as text} of a nested configuration (lists of entries by position)."""
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: json.dumps(obj, default=str, ensure_ascii=False)}


def config_diff(manifest_a: dict, manifest_b: dict) -> pd.DataFrame:
    """The configuration keys where two runs differ (``out``, where each was written, left
    out): columns setting, A, B ("—" where one run has no such key)."""
    a, b = (_flat((m or {}).get("config") or {}) for m in (manifest_a, manifest_b))
    keys = [k for k in dict.fromkeys([*a, *b]) if k != "out" and a.get(k) != b.get(k)]
    return pd.DataFrame({"setting": keys, "A": [a.get(k, "—") for k in keys], "B": [b.get(k, "—") for k in keys]})
