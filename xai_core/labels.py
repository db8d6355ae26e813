"""Which labels of an image are explained, and their TP / FP / FN / TN tags.

MindSpore explains ground truth ∪ {p > 0.5} with a fixed threshold and has no TN. Here the
threshold and top-k are configurable and all four tags exist (ANCHORS.md §1):

    TP: ground truth and predicted      FN: ground truth, not predicted
    FP: predicted, not ground truth     TN: neither (explained only because it is in the top-k)

"Predicted" means p > threshold for sigmoid (multi-label) models and "is the argmax and
p > threshold" for softmax (single-label) models, whose classes compete for one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

TAGS = ("TP", "FP", "FN", "TN")


@dataclass(frozen=True)
class LabelPolicy:
    threshold: float = 0.5
    top_k: int = 3

    def validate(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"labels.threshold is {self.threshold}; expected 0 < threshold < 1")
        if self.top_k < 0:
            raise ConfigError(f"labels.top_k is {self.top_k}; expected ≥ 0 (0 disables top-k)")


def tag_of(is_gt: bool, is_pred: bool) -> str:
    if is_gt:
        return "TP" if is_pred else "FN"
    return "FP" if is_pred else "TN"


def predicted(probs: np.ndarray, threshold: float, activation: str) -> np.ndarray:
    """(N, K) bool."""
    pred = probs > threshold
    if activation == "softmax":
        top = np.zeros_like(pred)
        top[np.arange(probs.shape[0]), probs.argmax(axis=1)] = True
        pred &= top
    return pred


@dataclass(frozen=True)
class ExplainedLabel:
    label: int
    prob: float
    tag: str
    is_gt: bool
    is_pred: bool
    in_top_k: bool


def select_labels(probs: np.ndarray, ground_truth: list[tuple[int, ...]], policy: LabelPolicy,
                  activation: str = "sigmoid") -> list[list[ExplainedLabel]]:
    """Per image, the explained labels ordered by decreasing probability.

    probs: (N, K) float; ground_truth: N tuples of class indices.
    Explained = ground truth ∪ predicted ∪ top-k.
    """
    n, k = probs.shape
    pred = predicted(probs, policy.threshold, activation)
    order = np.argsort(-probs, axis=1, kind="stable")
    out = []
    for i in range(n):
        gt = set(ground_truth[i])
        topk = set(order[i, : min(policy.top_k, k)].tolist())
        chosen = gt | set(np.flatnonzero(pred[i]).tolist()) | topk
        rows = [
            ExplainedLabel(int(c), float(probs[i, c]), tag_of(c in gt, bool(pred[i, c])), c in gt, bool(pred[i, c]), c in topk)
            for c in chosen
        ]
        rows.sort(key=lambda r: (-r.prob, r.label))
        out.append(rows)
    return out
