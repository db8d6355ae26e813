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
    specs = [{"type": cls.name, "params": dict(cls.smoke_params)} for cls in EXPLAINERS]
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
