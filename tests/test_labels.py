import numpy as np
import pytest

from xai_core.errors import ConfigError
from xai_core.labels import LabelPolicy, select_labels, tag_of


def test_tag_definitions():
    assert tag_of(True, True) == "TP"
    assert tag_of(True, False) == "FN"
    assert tag_of(False, True) == "FP"
    assert tag_of(False, False) == "TN"


def test_explained_is_gt_union_predicted_union_topk():
    probs = np.array([[0.9, 0.6, 0.2, 0.1, 0.05]])
    # gt {3}: FN; 0 and 1 above threshold and not gt: FP; top-3 adds 2 as TN.
    rows = select_labels(probs, [(3,)], LabelPolicy(threshold=0.5, top_k=3))[0]
    got = {r.label: r.tag for r in rows}
    assert got == {0: "FP", 1: "FP", 2: "TN", 3: "FN"}
    assert [r.label for r in rows] == [0, 1, 2, 3]  # by decreasing probability


def test_threshold_and_topk_are_configurable():
    probs = np.array([[0.9, 0.6, 0.2, 0.1]])
    rows = select_labels(probs, [(0,)], LabelPolicy(threshold=0.7, top_k=0))[0]
    assert [(r.label, r.tag) for r in rows] == [(0, "TP")]
    rows = select_labels(probs, [()], LabelPolicy(threshold=0.95, top_k=2))[0]
    assert [(r.label, r.tag) for r in rows] == [(0, "TN"), (1, "TN")]


def test_softmax_predicts_only_the_argmax():
    probs = np.array([[0.55, 0.45]])
    rows = select_labels(probs, [(1,)], LabelPolicy(threshold=0.4, top_k=0), activation="softmax")[0]
    assert {r.label: r.tag for r in rows} == {0: "FP", 1: "FN"}


@pytest.mark.parametrize("policy", [LabelPolicy(threshold=0.0), LabelPolicy(threshold=1.0), LabelPolicy(top_k=-1)])
def test_bad_policy_is_rejected(policy):
    with pytest.raises(ConfigError):
        policy.validate()


# ---- single-label (softmax) semantics -----------------------------------------------------

def imagenet_like(top: int, p_top: float, k: int = 1000, seed: int = 0) -> np.ndarray:
    """A softmax row over k classes whose argmax is ``top`` at ``p_top``, the rest spread."""
    rng = np.random.default_rng(seed)
    rest = rng.dirichlet(np.ones(k - 1)) * (1.0 - p_top)
    rest = np.minimum(rest, p_top * 0.9)
    rest *= (1.0 - p_top) / rest.sum()
    return np.insert(rest, top, p_top)[None]


def test_softmax_correct_top1_below_half_is_a_true_positive():
    # The case: EfficientNet-Lite0 says "missile" (the ground truth) at p = 0.26, its
    # top-1 among 1000 classes. That is a correct single-label prediction, not a miss (FN).
    probs = imagenet_like(657, 0.26)
    rows = select_labels(probs, [(657,)], LabelPolicy(), activation="softmax")[0]
    assert [(r.label, r.tag, r.is_pred) for r in rows] == [(657, "TP", True)]


def test_softmax_default_explains_ground_truth_and_top1_only():
    probs = np.full((1, 1000), 0.3 / 998)  # sums to 1 with the two below
    probs[0, 281], probs[0, 285] = 0.4, 0.3  # predicts "tabby"; the ground truth "Egyptian cat" is second
    rows = select_labels(probs, [(285,)], LabelPolicy(), activation="softmax")[0]
    assert [(r.label, r.tag) for r in rows] == [(281, "FP"), (285, "FN")]
    # Eight such images explain 16 labels, not 16 + 8 × 2 near-zero TN labels (top-3 default).
    # A configured top-k still adds runner-up classes as TN.
    rows = select_labels(probs, [(285,)], LabelPolicy(top_k=3), activation="softmax")[0]
    assert [r.tag for r in rows] == ["FP", "FN", "TN"]


def test_softmax_explicit_threshold_makes_unsure_argmax_abstain():
    probs = imagenet_like(657, 0.26)
    rows = select_labels(probs, [(657,)], LabelPolicy(threshold=0.5), activation="softmax")[0]
    assert [(r.label, r.tag) for r in rows] == [(657, "FN")]
    rows = select_labels(probs, [(657,)], LabelPolicy(threshold=0.2), activation="softmax")[0]
    assert [(r.label, r.tag) for r in rows] == [(657, "TP")]


def test_sigmoid_defaults_are_unchanged():
    # Multi-label: each class on its own against 0.5; top-3 explained.
    probs = np.array([[0.9, 0.6, 0.2, 0.1, 0.05]])
    assert select_labels(probs, [(3,)], LabelPolicy())[0] == select_labels(probs, [(3,)], LabelPolicy(0.5, 3))[0]
    rows = select_labels(np.array([[0.45, 0.3, 0.2, 0.1]]), [(0,)], LabelPolicy(), activation="sigmoid")[0]
    assert {r.label: r.tag for r in rows} == {0: "FN", 1: "TN", 2: "TN"}


def test_policy_defaults_per_activation():
    p = LabelPolicy()
    assert (p.threshold_for("sigmoid"), p.top_k_for("sigmoid")) == (0.5, 3)
    assert (p.threshold_for("softmax"), p.top_k_for("softmax")) == (None, 1)
    assert p.keep_threshold == 0.5 and LabelPolicy(threshold=0.3).keep_threshold == 0.3
    LabelPolicy().validate()
