"""Progress for every phase of a run (xai_core/progress.py): the fast-path probe, setup, the
parts, the sanity check and the final verification each print a bar or a line, and the run
ends with one line that says where the time went, made of the manifest's figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from toy import toy_config
from xai_core.progress import time_summary
from xai_core.summary import RunReader

TESTS = Path(__file__).parent


def test_every_phase_prints_and_the_last_line_says_where_the_time_went(toy_data, tmp_path):
    cfg = toy_config(toy_data, tmp_path / "run", batch_size=4, explainers=["gradient", "random"],
                     metrics=[{"type": "deletion_auc", "params": {"steps": 5}}, "pointing_game"],
                     uncertainty={"enabled": True, "passes": 3}, sanity={"enabled": True, "images": 3})
    # every forward call sleeps 0.03 s, so that each phase lasts long enough to be listed
    cfg["model"].update(factory="toy:slow_colour_net", factory_kwargs={"delay": 0.03})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(path)], cwd=TESTS,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    # Bars redraw with \r; every state is one screen line here.
    lines = [line.strip() for line in re.split(r"[\r\n]+", res.stderr) if line.strip()]
    starts = {name: next(i for i, line in enumerate(lines) if line.startswith(name))
              for name in ("fast path: staying on torch (the run makes about 252 gradient-free passes", "setup:",
                           "explaining:", "sanity check:", "finishing:", "done in")}
    assert list(starts) == sorted(starts, key=starts.get), "phases out of order"
    assert "12 items in 3 parts (3 to compute), 1 CPU thread, pipelined" in lines[starts["setup:"]]
    assert any(line.startswith("explaining: 100%") and "12/12" in line for line in lines)
    # the sanity bar runs over explainers × images and names the explainer at work
    assert any(line.startswith("sanity check: 100%") and "6/6" in line for line in lines)
    assert any(line.startswith("sanity check:") and "gradient" in line for line in lines)
    last = lines[-1]
    assert last.startswith("done in") and lines.index(last) > starts["finishing:"]
    for phase in ("explain", "metrics", "analyses", "sanity"):
        assert re.search(rf"\b{phase} [\d.]+ (s|min)", last), (phase, last)
    # setup (a toy model, no fast-path probe) and finishing (recounting parts) can take under
    # the 0.05 s a phase needs to be listed on a quiet machine
    for phase in ("setup", "finishing"):
        assert re.search(rf"\b{phase} [\d.]+ (s|min)", last) or phase not in last, (phase, last)
    assert "writing" in last and "ran beside the model" in last

    timing = RunReader(tmp_path / "run").manifest["timing"]
    phases = timing["phases_s"]
    assert set(phases) == {"setup", "explain", "metrics", "analyses", "waiting", "other", "sanity"}
    assert all(v >= 0 for v in phases.values())
    # the phases after setup add up to the run's own wall time (recorded before finishing)
    assert abs(sum(v for k, v in phases.items() if k != "setup") - timing["seconds"]) < 0.05 * timing["seconds"] + 0.05
    assert phases["sanity"] > 0 and timing["analysis_s"]["sanity"] == phases["sanity"] and phases["setup"] > 0
    assert f"setup {phases['setup']:.1f} s" in last or phases["setup"] >= 10 or phases["setup"] < 0.05


def test_quiet_prints_nothing(toy_data, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(toy_config(toy_data, tmp_path / "run", explainers=["random"],
                                              metrics=["pointing_game"], sanity={"enabled": True, "images": 2})))
    res = subprocess.run([sys.executable, "-m", "xai_core", "run", "--config", str(path), "--quiet"], cwd=TESTS,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stderr == "", res.stderr


def test_time_summary_lists_the_phases_in_order_with_their_share():
    timing = {"phases_s": {"setup": 2.0, "explain": 5.0, "metrics": 2.0, "analyses": 0.5, "other": 0.2,
                           "waiting": 0.01, "sanity": 10.0},
              "background_s": {"reading": 0.3, "writing": 1.5}, "pipelined": True}
    line = time_summary(timing, finishing=0.3)
    assert line.startswith("done in 20 s: setup 2.0 s (10 %), explain 5.0 s (25 %), metrics 2.0 s (10 %), "
                           "analyses 0.5 s (2 %), other 0.2 s (1 %), sanity 10 s (50 %), finishing 0.3 s (1 %)")
    assert line.endswith("; reading 0.3 s and writing 1.5 s ran beside the model")
    assert "waiting" not in line  # under 0.05 s: left out
    dask = time_summary({"phases_s": {"setup": 6.0, "parts": 60.0, "sanity": 4.0}, "workers": 2,
                         "workers_s": {"explain": 90.0, "metrics": 20.0, "analyses": 0.0, "writing": 3.0}})
    assert dask == ("done in 1 min 10 s: setup 6.0 s (9 %), parts 1 min 00 s (86 %), sanity 4.0 s (6 %); "
                    "on 2 worker(s), their compute time summed: explain 1 min 30 s, metrics 20 s, writing 3.0 s")


def test_the_closing_line_names_the_fast_forward_decisions_share_of_setup():
    from xai_core.progress import time_summary

    text = time_summary({"phases_s": {"setup": 2.0, "explain": 6.0}, "setup_s": {"model": 0.5, "fast_forward": 1.5}})
    assert text.startswith("done in 8.0 s: setup 2.0 s (25 %, of it the fast-forward decision 1.5 s), explain 6.0 s (75 %)")
    assert "fast-forward" not in time_summary({"phases_s": {"setup": 2.0}, "setup_s": {"fast_forward": 0.0}})
