"""A budget (xai_core/budget.py): cuts in the documented order to fit, prints and records them,
refuses in one line when the smallest plan does not fit."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toy import make_dataset, toy_config
from xai_core.budget import BudgetSpec, _allocate, budget_text, parse_budget
from xai_core.config import config_from_dict
from xai_core.errors import ConfigError
from xai_core.inspect import planned_vs_actual
from xai_core.runner import run
from xai_core.summary import RunReader

EXPLAINERS = ["gradient", {"type": "smoothgrad", "params": {"samples": 60}}]
METRICS = [{"type": "deletion_auc", "params": {"steps": 20}}, "sparseness"]


def _cfg(data, out, **over):
    return config_from_dict(toy_config(data, out, **{"explainers": EXPLAINERS, "metrics": METRICS, **over}))


def test_budget_in_passes_cuts_images_mistakes_first(tmp_path):
    data = make_dataset(tmp_path / "data", n=12)
    full = run(_cfg(data, tmp_path / "plan"), tmp_path / "plan", plan_only=True, progress=False)
    budget = full["passes"] // 2
    out = run(_cfg(data, tmp_path / "out", budget={"passes": budget}), tmp_path / "out", progress=False)
    r = RunReader(out)
    rec = r.manifest["budget"]
    assert rec["fits"] and rec["cuts"][0].startswith("images: ") and rec["planned_before"] == full["passes"]
    assert r.manifest["plan"]["passes"] <= budget
    assert planned_vs_actual(r.manifest)["passes"][1] <= budget  # what it paid, too
    assert len(r.samples()) == 12 and len(r.labels()) < 24  # 12 images × 2 labels
    # mistakes first: every FP / FN pair of the full labels is kept before any TP / TN pair is cut
    alloc = r.manifest["config"]["sample"]
    assert set(alloc) == {"TP", "FP", "FN", "TN"}


def test_allocation_keeps_mistakes_first_and_one_of_each_tag():
    counts = {"TP": 10, "FP": 3, "FN": 2, "TN": 30}
    assert _allocate(4, counts) == {"TP": 1, "FP": 1, "FN": 1, "TN": 1}  # the smallest: one of each
    assert _allocate(7, counts) == {"TP": 1, "FP": 3, "FN": 2, "TN": 1}  # then every mistake
    a = _allocate(15, counts)
    assert (a["FP"], a["FN"]) == (3, 2) and a["TP"] + a["TN"] == 10 and a["TN"] > a["TP"]  # then in proportion
    assert _allocate(100, counts) == counts and sum(_allocate(2, counts).values()) == 4


def test_then_curve_steps_and_sample_counts_are_cut(tmp_path):
    data = make_dataset(tmp_path / "data", n=4)
    small = run(_cfg(data, tmp_path / "p", sample={"TP": 1, "FP": 1, "FN": 1, "TN": 1},
                     explainers=["gradient", {"type": "smoothgrad", "params": {"samples": 50}}],
                     metrics=[{"type": "deletion_auc", "params": {"steps": 10}}, "sparseness"]),
                tmp_path / "p", plan_only=True, progress=False)
    out = run(_cfg(data, tmp_path / "out", budget={"passes": small["passes"] + 5}), tmp_path / "out", progress=False)
    cuts = RunReader(out).manifest["budget"]["cuts"]
    assert any(c.startswith("curve steps: ") and "deletion_auc.steps 20 → 10" in c for c in cuts)
    assert any(c.startswith("sample counts: ") and "smoothgrad.samples 60 → 50" in c for c in cuts)
    assert RunReader(out).manifest["config"]["metrics"][0]["params"]["steps"] == 10
    assert [e["name"] for e in RunReader(out).explainers] == ["gradient", "smoothgrad"]  # never a method


def test_a_budget_too_small_is_refused_in_one_line_before_writing(tmp_path):
    data = make_dataset(tmp_path / "data", n=4)
    with pytest.raises(ConfigError) as e:
        run(_cfg(data, tmp_path / "out", budget={"passes": 3}), tmp_path / "out", progress=False)
    assert "even the smallest plan" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("raw", [-1, {"seconds": -1}, {"passes": 0}, {"seconds": 1, "passes": 2}, {"hours": 2}, "soon"])
def test_bad_budgets_are_one_line(raw):
    with pytest.raises(ConfigError) as e:
        parse_budget(raw)
    assert "budget" in str(e.value) and "\n" not in str(e.value)


def test_budget_text():
    assert budget_text("2h") == {"seconds": 7200.0} and budget_text("90min") == {"seconds": 5400.0}
    assert budget_text("50000passes") == {"passes": 50000} and budget_text("30") == {"seconds": 30.0}
    assert parse_budget("1.5h") == BudgetSpec(seconds=5400.0)


def test_cli_budget(tmp_path):
    data = make_dataset(tmp_path / "data", n=4)
    out = tmp_path / "out"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(toy_config(data, out)))
    env = {"PYTHONPATH": str(Path(__file__).parent), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(cfg), "--budget", "10passes"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and "budget 10 passes: even the smallest plan" in r.stderr and not out.exists()
    r = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(cfg), "--budget", "-1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "--budget" in r.stderr
