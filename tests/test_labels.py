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
