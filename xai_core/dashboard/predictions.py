"""A run's predictions as dense matrices, and the classification metrics they give.

What a run predicted is in its labels table: every predicted label is explained (explained =
ground truth ∪ predicted ∪ top-k, ``xai_core/labels.py``), so a label that is not explained
was not predicted, whatever the run's threshold or activation was. Probabilities come from
the samples table (every class), ground truth from ``gt_labels``.
"""

from __future__ import annotations

import numpy as np

from ..labels import TAGS
from .tables import RunTables


def probs_matrix(t: RunTables) -> np.ndarray:
    """(n_samples, n_classes) float64 probabilities of every class (NaN where a row is short)."""
    def build():
        k = len(t.classes)
        out = np.full((t.n_samples, k), np.nan)
        probs = t.extra["probs"].combine_chunks() if t.n_samples else None
        if probs is None or not k:
            return out
        lengths = probs.value_lengths().to_numpy(zero_copy_only=False)
        flat = probs.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        if (lengths == k).all():
            out[:] = flat.reshape(-1, k)
        else:  # ragged (should not happen): row by row
            for i, p in enumerate(probs.to_pylist()):
                out[i, : min(k, len(p or []))] = (p or [])[:k]
        out.flags.writeable = False
        return out
    return t._memo(("probs_matrix",), build)


def gt_matrix(t: RunTables) -> np.ndarray:
    """(n_samples, n_classes) bool multi-hot ground truth."""
    def build():
        k = len(t.classes)
        out = np.zeros((t.n_samples, k), bool)
        if t.n_samples:
            gts = t.extra["gt_labels"].combine_chunks()
            lengths = gts.value_lengths().to_numpy(zero_copy_only=False)
            flat = gts.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
            rows = np.repeat(np.arange(t.n_samples), lengths)
            ok = (flat >= 0) & (flat < k)
            out[rows[ok], flat[ok]] = True
        out.flags.writeable = False
        return out
    return t._memo(("gt_matrix",), build)


def pred_matrix(t: RunTables) -> np.ndarray:
    """(n_samples, n_classes) bool: predicted labels (tag TP or FP in the labels table)."""
    def build():
        k = len(t.classes)
        out = np.zeros((t.n_samples, k), bool)
        lab, codes, pos = t.lcol("label"), t.lcol("tag"), t.labels["pos"].to_numpy()
        sel = np.isin(codes, [TAGS.index("TP"), TAGS.index("FP")]) & (lab >= 0) & (lab < k)
        out[pos[sel], lab[sel]] = True
        out.flags.writeable = False
        return out
    return t._memo(("pred_matrix",), build)


def _f1(tp, fp, fn) -> float:
    d = 2 * tp + fp + fn
    return float(2 * tp / d) if d else float("nan")


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of one class (area under the precision–recall steps, as
    scikit-learn's ``average_precision_score``); NaN without a positive."""
    pos = positives.astype(bool)
    n_pos = int(pos.sum())
    if not n_pos:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], pos[order]
    # Tied scores form one threshold: precision and recall are taken at the end of each tie.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(p)[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((precision * recall_step).sum())


def classification_summary(t: RunTables, positions: np.ndarray | None = None) -> dict[str, float]:
    """Per-label accuracy, exact match, micro- and macro-F1, mAP (classes with a positive)
    and top-1 accuracy (the argmax is one of the image's labels, over images with a label),
    over the run's images or those at ``positions``."""
    gt, pred, probs = gt_matrix(t), pred_matrix(t), probs_matrix(t)
    if positions is not None:
        gt, pred, probs = gt[positions], pred[positions], probs[positions]
    n, k = gt.shape
    if not n or not k:
        return {"images": n}
    tp = (gt & pred).sum(0)
    fp = (~gt & pred).sum(0)
    fn = (gt & ~pred).sum(0)
    present = (gt | pred).any(0)
    macro = [_f1(a, b, c) for a, b, c, ok in zip(tp, fp, fn, present) if ok]
    aps = [average_precision(np.nan_to_num(probs[:, c], nan=-1.0), gt[:, c]) for c in range(k) if gt[:, c].any()]
    top1 = np.argmax(np.where(np.isnan(probs), -np.inf, probs), axis=1)
    has = gt.any(1)
    return {
        "images": n,
        "per-label accuracy": float((gt == pred).mean()),
        "exact match": float((gt == pred).all(1).mean()),
        "micro-F1": _f1(tp.sum(), fp.sum(), fn.sum()),
        "macro-F1": float(np.mean(macro)) if macro else float("nan"),
        "mAP": float(np.mean(aps)) if aps else float("nan"),
        "top-1 accuracy": float(gt[np.arange(n), top1][has].mean()) if has.any() else float("nan"),
    }
