"""Row-wise statistics on (P, D) arrays shared by several metrics and the sanity check."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``: (P, D) → (P,)
    float64; NaN where a row has zero variance (the caller decides what that means)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    r[den == 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation row by row (average ranks for ties, as
    ``scipy.stats.spearmanr``): (P, D) → (P,), NaN where a row is constant."""
    return pearson_rows(rankdata(a, axis=1), rankdata(b, axis=1))


def constant_rows(a: np.ndarray) -> np.ndarray:
    """(P,) bool: rows whose values are all equal."""
    a = np.asarray(a)
    return (a == a[:, :1]).all(axis=1)
