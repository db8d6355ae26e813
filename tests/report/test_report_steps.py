"""The report of a run of several steps has the scores-over-steps chart and tables."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps_fixtures import monitor_run  # noqa: E402

from xai_core.report import write_report  # noqa: E402


def test_report_of_steps(tmp_path):
    run = monitor_run(tmp_path / "run", epochs=2, explainers=["gradient"], metrics=["sparseness"])
    html = write_report(run, tmp_path / "r.html").read_text()
    assert 'id="steps"' in html and "fig_steps" in html and "Scores over steps" in html
    one = monitor_run(tmp_path / "one", epochs=1, explainers=["gradient"], metrics=["sparseness"])
    assert 'id="steps"' not in write_report(one, tmp_path / "one.html").read_text()
