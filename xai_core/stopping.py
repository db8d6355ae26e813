"""Stop when the answer is settled: ``stop_when: {ranking_stable: 0.95}`` (issue 24).

After each part the runner asks how stable the comprehensive ranking is: the order of the
``top`` best explainers by their comprehensive score (equal weights: the mean over metrics of
each metric's mean [0, 1] score, as the Comprehensive page computes it with default weights)
on the images explained so far, against ``boots`` bootstrap resamples of those images
(seeded). *Stability* is the share of resamples whose top order equals the one of all images
so far, i.e. 1 − the probability that the order changes. When it reaches ``ranking_stable``
after at least ``min_parts`` parts, the run ends early: status ``interrupted`` with the reason
in ``error`` and the manifest's ``stopped_early`` (FORMAT.md); ``--resume`` finishes it,
and the finished run equals an uninterrupted one (each part is seeded by its number, so the
order parts are computed in does not change a number). With ``stop_when`` set, parts are
computed in a seeded random order, so that the images seen first are not the dataset's first.
Numpy only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError


@dataclass(frozen=True)
class StopSpec:
    ranking_stable: float = 0.95
    min_parts: int = 2
    top: int = 3
    boots: int = 200

    def validate(self) -> None:
        if not 0 < self.ranking_stable <= 1:
            raise ConfigError(f"stop_when.ranking_stable is {self.ranking_stable!r}; expected 0 < p ≤ 1 (0.95)")
        if self.min_parts < 1 or self.top < 1 or self.boots < 10:
            raise ConfigError(f"stop_when: min_parts {self.min_parts}, top {self.top}, boots {self.boots}; "
                              "expected min_parts ≥ 1, top ≥ 1, boots ≥ 10")


def parse_stop(raw) -> StopSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"stop_when is {raw!r}; expected a map such as {{ranking_stable: 0.95}}")
    names = {"ranking_stable", "min_parts", "top", "boots"}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"stop_when: unknown key {unknown[0]!r}; expected some of {sorted(names)}")
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"stop_when.{k} is {v!r}; expected a number")
    spec = StopSpec(**{k: (float(v) if k == "ranking_stable" else int(v)) for k, v in raw.items()})
    spec.validate()
    return spec


def part_order(todo: list[int], seed: int) -> list[int]:
    """``todo`` in a seeded random order (the same for the same seed and parts)."""
    out = list(todo)
    random.Random(int(seed) * 7919 + 17).shuffle(out)
    return out


class RankingWatch:
    """Per-image mean scores of the parts computed so far, and the ranking's stability."""

    def __init__(self, spec: StopSpec, seed: int = 0):
        self.spec, self.seed = spec, int(seed)
        self._chunks: list[tuple[np.ndarray, list, list, np.ndarray]] = []

    def add(self, scores: dict) -> None:
        """A part's ``scores`` columns (engine.compute_part)."""
        if scores["sample_index"]:
            self._chunks.append((np.asarray(scores["sample_index"]), list(scores["explainer"]),
                                 list(scores["metric"]), np.asarray(scores["score"], dtype=np.float64)))

    def _cube(self):
        """(images × explainers × metrics) mean score per image (NaN where none), names."""
        idx = np.concatenate([c[0] for c in self._chunks])
        exp = [e for c in self._chunks for e in c[1]]
        met = [m for c in self._chunks for m in c[2]]
        val = np.concatenate([c[3] for c in self._chunks])
        images, ii = np.unique(idx, return_inverse=True)
        es, ei = np.unique(np.asarray(exp), return_inverse=True)
        ms, mi = np.unique(np.asarray(met), return_inverse=True)
        ok = np.isfinite(val)
        total = np.zeros((len(images), len(es), len(ms)))
        count = np.zeros_like(total)
        np.add.at(total, (ii[ok], ei[ok], mi[ok]), val[ok])
        np.add.at(count, (ii[ok], ei[ok], mi[ok]), 1)
        return total, count, list(es)

    def _top(self, total: np.ndarray, count: np.ndarray) -> tuple:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = total.sum(0) / count.sum(0)  # explainers × metrics
            ok = np.isfinite(means)
            score = np.where(ok, means, 0.0).sum(1) / ok.sum(1)  # the mean over the metrics it has
        score = np.where(np.isfinite(score), score, -np.inf)
        order = np.lexsort((np.arange(len(score)), -score))  # best first, ties by name
        return tuple(order[: self.spec.top].tolist())

    def stability(self) -> tuple[float | None, list[str]]:
        """(share of bootstrap resamples with the same top order, that order by name); None
        before any scored image."""
        if not self._chunks:
            return None, []
        total, count, names = self._cube()
        if total.shape[1] < 2:
            return 1.0, names
        best = self._top(total, count)
        rng = np.random.default_rng(self.seed)
        n = total.shape[0]
        same = sum(self._top(total[pick], count[pick]) == best
                   for pick in (rng.integers(0, n, n) for _ in range(self.spec.boots)))
        return same / self.spec.boots, [names[i] for i in best]
