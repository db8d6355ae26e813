"""What a run records as `signed` is measured: the instance's configuration and the maps."""

import numpy as np

from toy import toy_config
from xai_core.config import config_from_dict
from xai_core.explainers import EXPLAINERS
from xai_core.runner import run
from xai_core.summary import RunReader


def test_gradcam_without_relu_and_xrai_record_signed_when_their_maps_have_negatives(toy_data, tmp_path):
    assert EXPLAINERS.get("gradcam").signed is False and EXPLAINERS.get("xrai").signed is False  # declared
    raw = toy_config(toy_data, tmp_path / "run", metrics=["iosr"], explainers=[
        "gradcam",
        {"type": "gradcam", "name": "gradcam_signed", "params": {"relu": False}},
        {"type": "xrai", "params": {"steps": 4, "segment_side": 32}},
    ])
    raw["model"]["factory"] = "toy:contrast_net"  # other colours count against a class: negative evidence
    cfg = config_from_dict(raw)
    assert EXPLAINERS.get("gradcam")({"relu": False}).is_signed  # by configuration, before any map
    run(cfg, cfg.out, progress=False)
    r = RunReader(cfg.out)
    entry = {e["name"]: e for e in r.explainers}
    labels, det = r.labels(), r.details()
    flags = det[det["key"] == "has_negative"].set_index(["explainer", "sample_index", "label"])["value"]
    for name in entry:
        # the per-map flag is the map's own sign
        for _, row in labels.iterrows():
            neg = bool(r.saliency(name, row.part, row.map_offset).min() < 0)
            assert flags[(name, row.sample_index, row.label)] == float(neg)
    assert entry["gradcam_signed"]["signed_declared"] is True and entry["gradcam_signed"]["has_negative"] is True
    assert entry["xrai"]["signed_declared"] is False and entry["xrai"]["has_negative"] is True
    assert entry["gradcam_signed"]["signed"] is True and entry["xrai"]["signed"] is True
    assert r.signed("xrai") and r.signed("gradcam_signed")
    # ReLU'd Grad-CAM stays unsigned: no map has a negative value.
    assert entry["gradcam"]["signed"] is False and entry["gradcam"]["has_negative"] is False
    assert not r.signed("gradcam")
    assert np.isfinite(r.scores()["raw"]).any()
