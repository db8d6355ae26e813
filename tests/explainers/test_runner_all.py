"""Every registered explainer runs through the runner on the toy ColourNet run (several labels
per image, mixed in one batch), and each stored map equals a direct call on its pair."""

from __future__ import annotations

import numpy as np

from toy import SIZE, toy_config
from xai_core.config import config_from_dict
from xai_core.data import ManifestDataset, prepare_batch
from xai_core.explainers import EXPLAINERS
from xai_core.models import ModelSpec, load_model
from xai_core.runner import run
from xai_core.summary import RunReader


def test_every_explainer_in_a_toy_run(toy_data, tmp_path):
    # ColourNet has no attention: the attention explainers run on a ViT (test below).
    specs = [{"type": cls.name, "params": dict(cls.smoke_params)} for cls in EXPLAINERS if not cls.needs_attention]
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", explainers=specs, metrics=[],
                                      labels={"threshold": 0.5, "top_k": 2}, batch_size=6))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "complete"
    labels = r.labels()
    per_image = labels.groupby("sample_index").size()
    assert per_image.max() >= 2, "the toy run should explain several labels per image"

    model = load_model(ModelSpec(**cfg.model.__dict__), 3)
    batch = prepare_batch(ManifestDataset(toy_data), list(range(len(r.samples()))), (SIZE, SIZE))
    rows = labels[labels["sample_index"].isin(per_image[per_image >= 2].index)].head(3)
    for spec in specs:
        exp = EXPLAINERS.get(spec["type"])(spec["params"])
        stored = [r.saliency(spec["type"], row.part, row.map_offset) for row in labels.itertuples()]
        assert all(m.shape == (SIZE, SIZE) and np.isfinite(m).all() for m in stored), spec["type"]
        direct = exp.explain(model, batch.pixels[rows["sample_index"].tolist()], rows["label"].tolist())
        for row, d in zip(rows.itertuples(), direct.numpy()):
            got = r.saliency(spec["type"], row.part, row.map_offset)
            scale = max(np.abs(d).max(), 1e-12)
            np.testing.assert_allclose(got / scale, d / scale, atol=1e-4, err_msg=spec["type"])


def test_transformer_explainers_in_a_vit_run(toy_data, tmp_path):
    """On a ViT (hand-written attention, class token) the runner records what each explainer
    resolved: Grad-CAM's block and token grid, the attention modules read; every map equals a
    direct call."""
    specs = ["gradcam", "attention_rollout", "attention_relevance", "gradient"]
    model = {"factory": "archs:hand_vit", "factory_kwargs": {"classes": 3}, "activation": "sigmoid",
             "input_size": [SIZE, SIZE], "mean": [0.5], "std": [0.5]}
    cfg = config_from_dict(toy_config(toy_data, tmp_path / "run", model=model, explainers=specs, metrics=["deletion_auc"],
                                      batch_size=6))
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    assert r.status == "complete"
    entries = {e["name"]: e for e in r.explainers}
    assert entries["gradcam"]["resolved"] == {"layer": "blocks.1", "call": None, "layout": "tokens", "grid": [4, 4],
                                              "prefix_tokens": 1, "grid_source": "inferred"}  # no warning: 4×4 is square
    for name in ("attention_rollout", "attention_relevance"):
        res = entries[name]["resolved"]
        assert res["modules"] == [f"blocks.{i}.attn.attn_drop" for i in range(3)] and res["grid"] == [4, 4]
        assert res["prefix_tokens"] == 1 and res["token"] == "cls"
    assert entries["gradient"]["resolved"] is None
    handle = load_model(ModelSpec(**cfg.model.__dict__), 3)
    labels = r.labels().head(4)
    batch = prepare_batch(ManifestDataset(toy_data), labels["sample_index"].tolist(), (SIZE, SIZE))
    for name in specs:
        direct = EXPLAINERS.get(name)().explain(handle, batch.pixels, labels["label"].tolist())
        for row, d in zip(labels.itertuples(), direct.numpy()):
            got = r.saliency(name, row.part, row.map_offset)
            np.testing.assert_allclose(got, d, rtol=1e-4, atol=1e-6 * max(np.abs(d).max(), 1e-12), err_msg=name)
