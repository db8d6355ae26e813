"""Axiom warnings where a user reads scores — the Runs page, the comprehensive assessment (its
ranking too) and the classification assessment — and the layer a CAM read, in the saliency
legend."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from apptest_util import open_page

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archs import axiom_run  # noqa: E402


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return axiom_run(tmp_path_factory.mktemp("axiom_pages"))[0]


def test_runs_page_badge(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, None)
    badges = [m for m in at.markdown if ":material/warning: axioms]" in m.value]
    assert badges and "deeplift: completeness violated on" in badges[0].help


def test_assessment_pages_warn_and_mark_the_ranking(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, "pages/comprehensive.py", "axioms")
    assert any("deeplift: completeness violated on" in w.value for w in at.warning)
    table = next(t.value for t in at.table if "comprehensive" in t.value.columns).set_index("explainer")
    assert table.loc["deeplift", "axioms"].startswith("⚠ completeness violated on")
    assert table.loc["gradient", "axioms"] == "ok"
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]
    assert "deeplift ⚠" in bars and "gradient" in bars
    cls = open_page(monkeypatch, logdir, "pages/classification.py", "axioms")
    assert any("deeplift: completeness violated on" in w.value for w in cls.warning)


def test_the_saliency_legend_names_the_cam_layer(monkeypatch, logdir):
    at = open_page(monkeypatch, logdir, "pages/saliency.py", "axioms")
    assert "layer stages (4×4 map)" in [c.value for c in at.caption]
