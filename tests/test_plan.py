"""A run's plan (xai_core/plan.py): planned passes equal the passes the run then makes, on toy
runs whose every count is fixed by definition; ``--plan`` / ``plan=True`` write nothing."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from toy import CLASSES, SIZE, colour_net, make_dataset, toy_config
from xai_core.config import config_from_dict
from xai_core.explainers import EXPLAINERS
from xai_core.inspect import inspect_run, planned_vs_actual
from xai_core.metrics import METRICS
from xai_core.runner import run
from xai_core.summary.reader import read_manifest

# Every count fixed by a definition: gradient, CAM and path methods, perturbation methods sharing
# their passes across an image's labels, curve, ROAD, infidelity and re-explaining metrics.
EXPLAINERS_CFG = ["gradient", "gradcam", {"type": "integrated_gradients", "params": {"steps": 4}}, "random",
                  {"type": "occlusion", "params": {"window": 16, "stride": 8}}, {"type": "rise", "params": {"masks": 8}}]
METRICS_CFG = [{"type": "deletion_auc", "params": {"steps": 4}}, {"type": "insertion_auc", "params": {"steps": 3}},
               "pointing_game", {"type": "max_sensitivity", "params": {"samples": 2}}, "class_sensitivity",
               {"type": "road_morf", "params": {"fractions": [0.5]}}, {"type": "infidelity", "params": {"samples": 3}},
               "naive_faithfulness", "sparseness"]


def _actual(manifest: dict) -> int:
    return planned_vs_actual(manifest)["passes"][1]


@pytest.mark.parametrize("batch_size", [6, 4])
def test_planned_passes_equal_actual_passes(tmp_path, batch_size):
    """One part (the probe is the whole dataset), and two parts whose images all have two labels
    (top_k 2 on ColourNet's confident squares: the probe part stands for the other exactly)."""
    data = make_dataset(tmp_path / "data", n=6)
    cfg = config_from_dict(toy_config(data, tmp_path / "out", explainers=EXPLAINERS_CFG, metrics=METRICS_CFG,
                                      batch_size=batch_size,
                                      uncertainty={"enabled": True, "passes": 3, "tta_shift": 1},
                                      sanity={"enabled": True, "images": 2}))
    out = run(cfg, tmp_path / "out", progress=False)
    m = read_manifest(out)
    plan = m["plan"]
    assert plan["images"] == 6 and plan["parts"] == (1 if batch_size == 6 else 2)
    assert all(r["source"] == "definition" for r in plan["breakdown"].values() if r["passes"])
    assert plan["passes"] == _actual(m) > 0
    assert plan["passes"] == sum(r["passes"] for r in plan["breakdown"].values())
    lo, hi = plan["seconds_range"]
    assert 0 <= lo <= plan["seconds"] <= hi
    info = inspect_run(out)
    assert info["plan"]["passes"] == [plan["passes"], plan["passes"]]
    from xai_core.dashboard.runs import run_info  # the Runs page's line

    text = run_info(tmp_path, out).plan
    assert text.startswith(f"plan: {plan['passes']:,} passes") and f"actual: {plan['passes']:,} passes" in text


def test_resumed_run_plans_only_what_is_left(tmp_path):
    data = make_dataset(tmp_path / "data", n=8)
    cfg = config_from_dict(toy_config(data, tmp_path / "out", batch_size=4))
    run(cfg, tmp_path / "out", progress=False, stop_after_parts=1)
    run(cfg, tmp_path / "out", progress=False, resume=True)
    m = read_manifest(tmp_path / "out")
    assert m["plan"]["images"] == 4 and m["plan"]["parts"] == 1
    assert m["plan"]["passes"] == _actual(m)


def test_adaptive_methods_are_measured_on_the_probe(tmp_path):
    """Anchors' search and the counterfactual search are not fixed by a definition: the plan
    measures them on the probe part (with a fresh instance, so the run still pays its own)."""
    data = make_dataset(tmp_path / "data", n=3)
    cfg = config_from_dict(toy_config(
        data, tmp_path / "out", batch_size=3, metrics=["deletion_auc"],
        explainers=["gradient", {"type": "anchors", "params": {"max_passes": 40, "initial_samples": 8, "draw_size": 8}}],
        counterfactual={"enabled": True, "layers": 2}))
    out = run(cfg, tmp_path / "out", progress=False)
    m = read_manifest(out)
    src = {k: r["source"] for k, r in m["plan"]["breakdown"].items()}
    assert src["explainer anchors"] == "probe" and src["counterfactual"] == "probe"
    assert src["explainer gradient"] == "definition"
    assert m["plan"]["passes"] == _actual(m)  # one part: the probe is the run


def test_plan_only_writes_nothing(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", n=4)
    out = tmp_path / "never"
    plan = run(config_from_dict(toy_config(data, out)), out, plan_only=True)
    assert not out.exists()
    assert plan["passes"] > 0 and plan["images"] == 4
    assert capsys.readouterr().out.startswith("plan: 4 images in 1 parts")


def test_cli_plan_prints_and_writes_nothing(tmp_path):
    data = make_dataset(tmp_path / "data", n=4)
    out = tmp_path / "never"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(toy_config(data, out)))
    tests = Path(__file__).parent
    env = {"PYTHONPATH": str(tests), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(cfg), "--plan"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "model passes" in r.stdout and "gradient" in r.stdout
    assert not out.exists()


def test_api_plan_returns_the_plan_and_writes_nothing(tmp_path):
    import xai_core

    images = torch.rand(3, 3, SIZE, SIZE)
    out = tmp_path / "nb"
    plan = xai_core.explain(colour_net(), images, classes=CLASSES, activation="sigmoid", out=out,
                            explainers=["gradient", "occlusion"], metrics=["deletion_auc"],
                            plan=True, progress=False)
    assert isinstance(plan, dict) and plan["images"] == 3
    assert set(plan["per_image"]) >= {"predictions", "explainer gradient", "explainer occlusion"}
    assert not out.exists()


def test_every_fixed_definition_matches_a_measured_call():
    """Each explainer's passes_per_image and each metric's passes_per_pair against the passes
    one real call makes on ColourNet (one image with two labels; two pairs)."""
    from xai_core.metrics.base import MetricContext
    from xai_core.models.handle import ClassifierHandle
    from xai_core.models.handle import PixelSpaceModel

    module = PixelSpaceModel(colour_net(), mean=[0, 0, 0], std=[1, 1, 1])
    model = ClassifierHandle(module=module, activation="sigmoid", input_size=(SIZE, SIZE), num_classes=3)
    x = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    shape = (3, SIZE, SIZE)

    def passes(fn):
        p0 = model.passes
        fn()
        return model.passes - p0

    checked = 0
    for cls in EXPLAINERS:
        e = cls(dict(cls.smoke_params))
        if cls.needs_attention or e.passes_per_image(shape, 1) is None:
            continue
        assert passes(lambda: e.explain_grouped(model, x[:1], [[0, 1]], batch_size=4)) == e.passes_per_image(shape, 2), cls.name
        checked += 1
    assert checked >= 15
    occ = [c for c in EXPLAINERS if c.name == "occlusion"][0]({"window": 16, "stride": 8})
    grad = [c for c in EXPLAINERS if c.name == "gradient"][0]()
    for exp in (grad, occ):
        for cls in METRICS:
            met = cls({"steps": 5} if "steps" in cls.Params.__dataclass_fields__ else {})
            t = torch.tensor([0, 1])
            maps, probs = exp.explain(model, x, t, batch_size=4), model.probs(x)
            fn = lambda a, b: exp.explain(model, a, b, batch_size=4)  # noqa: E731
            mctx = (MetricContext(model, x, t, None, explain=fn, batch_size=4, probs=probs) if cls.label_agnostic else
                    MetricContext(model, x, t, maps, masks=np.ones((2, SIZE, SIZE), bool), has_mask=np.ones(2, bool),
                                  is_ground_truth=np.ones(2, bool), explain=fn, batch_size=4, probs=probs))
            assert passes(lambda: met.evaluate(mctx)) == 2 * met.passes_per_pair(shape, exp), (exp.name, cls.name)
