"""Axiom diagnostics (xai_core/axioms.py): per-map figures summarised per explainer in the
manifest at completion, the warnings they raise, and ``xai-core inspect`` showing them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from archs import axiom_run
from xai_core.axioms import AXIOMS, run_warnings, summarise, warnings
from xai_core.cli import main
from xai_core.summary import RunReader


@pytest.fixture(scope="module")
def axioms(tmp_path_factory):
    return axiom_run(tmp_path_factory.mktemp("axioms"))


def test_summary_and_warnings_of_details_rows():
    d = pd.DataFrame({"explainer": ["ig"] * 4 + ["gb"] * 2 + ["anchors"],
                      "key": ["completeness_error"] * 4 + ["gradient_correlation"] * 2 + ["precision"],
                      "value": [0.01, 0.02, 0.5, np.nan, 0.97, 0.2, 0.9]})
    s = summarise(d)
    assert set(s) == {"ig", "gb"}
    assert s["ig"]["completeness_error"] == {"median": 0.02, "worst": 0.5, "n": 3, "violations": 1,
                                             "share": pytest.approx(1 / 3), "threshold": 0.10}
    assert s["gb"]["gradient_correlation"]["violations"] == 1
    w = warnings(s, [{"name": "ig", "type": "integrated_gradients"}, {"name": "gb", "type": "guided_backprop"}])
    assert w["ig"] == ["ig: completeness violated on 33% of maps (median 2.0%, worst 50.0%; threshold 10.0%) — too few "
                       "steps for this model: raise `steps`"]
    assert w["gb"][0].startswith("gb: rule applied violated on 50% of maps (median 0.585, worst 0.970; threshold 0.900)")
    assert warnings(summarise(d[d["value"] < 0.1])) == {}
    assert warnings({"x": {"completeness_error": {"violations": 1}}}) == {}   # malformed: nothing said
    assert AXIOMS["completeness_error"].threshold == 0.10


def test_a_complete_run_records_its_diagnostics(axioms):
    _, run_dir = axioms
    r = RunReader(run_dir)
    diag = r.manifest["diagnostics"]
    n_maps = len(r.labels())
    assert set(diag) == {"deeplift", "integrated_gradients"}          # gradient has no axiom
    dl = diag["deeplift"]["completeness_error"]
    assert dl["n"] == n_maps and dl["violations"] >= 1 and dl["worst"] > 0.1
    assert diag == summarise(r.details())
    entry = next(e for e in r.explainers if e["name"] == "deeplift")
    assert list(entry["resolved"]["unsupported"]) == ["layer_norm"]
    lines = run_warnings(r.manifest)["deeplift"]
    assert lines[0].startswith("deeplift: completeness violated on ") and lines[0].endswith(
        "— rules unsupported for layer_norm")


def test_inspect_shows_the_warnings(axioms, capsys):
    _, run_dir = axioms
    assert main(["inspect", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "WARNING deeplift: completeness violated on" in out and "rules unsupported for layer_norm" in out
    assert main(["inspect", str(run_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert any(w.startswith("deeplift: completeness") for w in info["warnings"])
    assert info["diagnostics"]["deeplift"]["completeness_error"]["violations"] >= 1
    assert info["resolved"]["deeplift"] == {"unsupported": {"layer_norm": info["resolved"]["deeplift"]["unsupported"]
                                                            ["layer_norm"]}}


def test_running_runs_are_judged_from_their_details(axioms):
    _, run_dir = axioms
    r = RunReader(run_dir)
    man = {k: v for k, v in r.manifest.items() if k != "diagnostics"}
    assert run_warnings(man, r.details()) == run_warnings(r.manifest)
    assert run_warnings(man) == {}
