"""Smoke test of the demo training loop (tiny data, one epoch)."""

import json

import numpy as np

from xai_core.demo.model import DemoCNN, load_demo_model
from xai_core.demo.train import evaluate, train_demo_model


def test_train_smoke(small_dataset, tmp_path):
    out = tmp_path / "w" / "model.pt"
    metrics = train_demo_model(small_dataset, out, epochs=1, batch_size=8, verbose=False)
    assert out.is_file() and isinstance(load_demo_model(out), DemoCNN)
    saved = json.loads((out.parent / "metrics.json").read_text())
    assert saved == metrics and saved["n_train"] == 20 and saved["n_test"] == 20
    for key in ("per_label_accuracy", "exact_match", "micro_f1", "macro_f1", "mAP"):
        assert 0.0 <= metrics[key] <= 1.0


def test_evaluate_perfect_predictions():
    targets = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    m = evaluate(targets * 0.9 + 0.05, targets)
    assert m["per_label_accuracy"] == m["exact_match"] == m["micro_f1"] == m["mAP"] == 1.0
