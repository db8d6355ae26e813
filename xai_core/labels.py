"""Which labels of an image are explained, and their TP / FP / FN / TN tags.

MindSpore explains ground truth ∪ {p > 0.5} with a fixed threshold and has no TN. Here the
threshold and top-k are configurable and all four tags exist (ANCHORS.md §1):

    TP: ground truth and predicted      FN: ground truth, not predicted
    FP: predicted, not ground truth     TN: neither (explained only because it is in the top-k)

"Predicted" depends on the model's activation:

* sigmoid (multi-label): p > threshold, each class on its own (threshold 0.5 when unset);
* softmax (single-label): the argmax — the classes compete for one slot, so a correct top-1
  answer at p = 0.26 among 1000 classes is a prediction, not a miss. Setting ``threshold``
  explicitly adds "and p > threshold" (abstain on unsure images).

Explained labels = ground truth ∪ predicted ∪ top-k, with top-k 3 for sigmoid and 1 for
softmax when unset: with many competing classes, the classes ranked 2…k are near-zero
"TN" labels that would swamp the averages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError

TAGS = ("TP", "FP", "FN", "TN")

#: Defaults when ``threshold`` / ``top_k`` are unset (None), per activation.
DEFAULT_THRESHOLD = {"sigmoid": 0.5, "softmax": None}
DEFAULT_TOP_K = {"sigmoid": 3, "softmax": 1}


@dataclass(frozen=True)
class LabelPolicy:
    """``threshold``/``top_k`` None mean "the default of the model's activation" (see the
    module doc); an explicit value is used as given for both activations."""

    threshold: float | None = None
    top_k: int | None = None

    def validate(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"labels.threshold is {self.threshold}; expected 0 < threshold < 1 "
                              "(or leave it unset: 0.5 for sigmoid, the argmax for softmax)")
        if self.top_k is not None and self.top_k < 0:
            raise ConfigError(f"labels.top_k is {self.top_k}; expected ≥ 0 (0 disables top-k)")

    def threshold_for(self, activation: str) -> float | None:
        """The threshold "predicted" uses; None = softmax's plain argmax."""
        return self.threshold if self.threshold is not None else DEFAULT_THRESHOLD.get(activation, 0.5)

    def top_k_for(self, activation: str) -> int:
        return self.top_k if self.top_k is not None else DEFAULT_TOP_K.get(activation, 3)

    @property
    def keep_threshold(self) -> float:
        """The probability a counterfactual must keep: the threshold, 0.5 when unset."""
        return self.threshold if self.threshold is not None else 0.5


def tag_of(is_gt: bool, is_pred: bool) -> str:
    if is_gt:
        return "TP" if is_pred else "FN"
    return "FP" if is_pred else "TN"


def predicted(probs: np.ndarray, threshold: float | None, activation: str) -> np.ndarray:
    """(N, K) bool. Sigmoid: p > threshold (0.5 if None). Softmax: the argmax, and
    p > threshold only when a threshold is given."""
    if activation != "softmax":
        return probs > (0.5 if threshold is None else threshold)
    pred = np.zeros(probs.shape, dtype=bool)
    if probs.shape[0] and probs.shape[1]:
        pred[np.arange(probs.shape[0]), probs.argmax(axis=1)] = True
    if threshold is not None:
        pred &= probs > threshold
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
    pred = predicted(probs, policy.threshold_for(activation), activation)
    top_k = policy.top_k_for(activation)
    order = np.argsort(-probs, axis=1, kind="stable")
    out = []
    for i in range(n):
        gt = set(ground_truth[i])
        topk = set(order[i, : min(top_k, k)].tolist())
        chosen = gt | set(np.flatnonzero(pred[i]).tolist()) | topk
        rows = [
            ExplainedLabel(int(c), float(probs[i, c]), tag_of(c in gt, bool(pred[i, c])), c in gt, bool(pred[i, c]), c in topk)
            for c in chosen
        ]
        rows.sort(key=lambda r: (-r.prob, r.label))
        out.append(rows)
    return out


def given_labels(probs: np.ndarray, ground_truth: list[tuple[int, ...]], targets: list[list[int]],
                 policy: LabelPolicy, activation: str = "sigmoid") -> list[list[ExplainedLabel]]:
    """Per image, exactly the labels ``targets`` asks for (a service request's ``labels``),
    tagged by the same rules as :func:`select_labels` and in the same order (decreasing
    probability); ``in_top_k`` still says whether each is in the policy's top-k."""
    n, k = probs.shape
    pred = predicted(probs, policy.threshold_for(activation), activation)
    order = np.argsort(-probs, axis=1, kind="stable")
    top_k = policy.top_k_for(activation)
    out = []
    for i in range(n):
        gt, topk = set(ground_truth[i]), set(order[i, : min(top_k, k)].tolist())
        rows = [ExplainedLabel(int(c), float(probs[i, c]), tag_of(c in gt, bool(pred[i, c])), c in gt,
                               bool(pred[i, c]), c in topk) for c in sorted(set(int(t) for t in targets[i]))]
        rows.sort(key=lambda r: (-r.prob, r.label))
        out.append(rows)
    return out
