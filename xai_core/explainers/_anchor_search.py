"""The search machinery of the anchors explainer: KL confidence bounds of a Bernoulli mean
(KL-LUCB) and the perturbation pool shared by the searches of one image's labels."""

from __future__ import annotations

import math

import numpy as np


# ---- KL confidence bounds of a Bernoulli mean (Kaufmann & Kalyanakrishnan 2013) -----------
def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    q = np.clip(q, 1e-7, 1 - 1e-7)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def kl_upper(p, level, iters: int = 17) -> np.ndarray:
    """Largest q ≥ p with KL(p ‖ q) ≤ level, by bisection (vectorised). Pinsker's inequality
    KL ≥ 2(p − q)² bounds the search to q ≤ p + √(level / 2)."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    lo, hi = p.copy(), np.minimum(1.0, p + np.sqrt(level / 2))
    for _ in range(iters):
        q = (lo + hi) / 2
        over = _kl(p, q) > level
        hi, lo = np.where(over, q, hi), np.where(over, lo, q)
    return hi


def kl_lower(p, level, iters: int = 17) -> np.ndarray:
    """Smallest q ≤ p with KL(p ‖ q) ≤ level."""
    p, level = np.broadcast_arrays(np.asarray(p, float), np.asarray(level, float))
    lo, hi = np.maximum(0.0, p - np.sqrt(level / 2)), p.copy()
    for _ in range(iters):
        q = (lo + hi) / 2
        over = _kl(p, q) > level
        lo, hi = np.where(over, q, lo), np.where(over, hi, q)
    return lo


def _lucb_beta(n_arms: int, t: int, delta: float) -> float:
    """Exploration rate of KL-LUCB (Kaufmann & Kalyanakrishnan 2013, Thm. 3; constants of
    the anchors reference code): log(k·n·t^α / δ) + log log(…), α = 1.1, k = 405.5."""
    temp = math.log(405.5 * n_arms * t**1.1 / delta)
    return temp + math.log(temp)


class _Pool:
    """Perturbation streams of one image, shared by the searches of all its labels.

    One stream per anchor A: its k-th perturbation keeps every superpixel of A and each other
    one with probability 1 − p_replace, drawn from a generator seeded by (seed, image, A), so
    it depends on k alone. A label's search reads the first n_A samples of each stream it asked
    for (its *view*): it sees the same data whichever other labels are explained with it, and
    two labels asking for the same samples cost one model pass. A sample of stream A is a valid
    draw for anchor B iff A ⊆ B and it keeps B: the superpixels outside B are then independent
    Bernoulli draws, as D(· | B) requires (alibi reuses samples the same way).
    """

    def __init__(self, n_features: int, n_classes: int, seed: int, digest: int, p_replace: float):
        self.n_features, self.n_classes = n_features, n_classes
        self.seed, self.digest, self.p_replace = seed, digest, p_replace
        self.z: dict[frozenset, np.ndarray] = {}
        self.pred: dict[frozenset, np.ndarray] = {}
        self._rng: dict[frozenset, np.random.Generator] = {}

    def draw(self, anchor: frozenset, length: int) -> np.ndarray:
        """(M, F) bool: the perturbations stream ``anchor`` lacks to reach ``length`` samples."""
        if anchor not in self._rng:
            key = [self.seed, self.digest, len(anchor), *sorted(anchor)]
            self._rng[anchor] = np.random.default_rng(key)
            self.z[anchor] = np.zeros((0, self.n_features), bool)
            self.pred[anchor] = np.zeros((0, self.n_classes), bool)
        missing = length - self.z[anchor].shape[0]
        if missing <= 0:
            return np.zeros((0, self.n_features), bool)
        z = self._rng[anchor].random((missing, self.n_features)) >= self.p_replace
        z[:, sorted(anchor)] = True
        return z

    def extend(self, anchor: frozenset, z: np.ndarray, pred: np.ndarray) -> None:
        self.z[anchor] = np.concatenate([self.z[anchor], z])
        self.pred[anchor] = np.concatenate([self.pred[anchor], pred])

    def stats(self, anchor: frozenset, view: dict, label: int, decision: bool) -> tuple[int, int]:
        """(valid samples, samples keeping the decision) for ``anchor`` within ``view``."""
        cols = sorted(anchor)
        n = pos = 0
        for stream, k in view.items():
            if stream <= anchor and k:
                valid = self.z[stream][:k][:, cols].all(1)
                n += int(valid.sum())
                pos += int((self.pred[stream][:k][valid, label] == decision).sum())
        return n, pos

    @property
    def passes(self) -> int:
        return sum(z.shape[0] for z in self.z.values())
