"""README "From Python" runs as written (a notebook user's first cell), against the real
EfficientNet-Lite0 weights and scikit-image's photos; only the dashboard's port is made free."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def example() -> str:
    text = README.read_text()
    section = text[text.index("## From Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_from_python_example_runs(tmp_path, monkeypatch):
    code = example()
    assert "port=8501" in code
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code.replace("port=8501", "port=0"), "README.md (From Python)", "exec"), ns)
    run, dash = ns["run"], ns["dash"]
    assert run.status == "complete" and list(run.samples["sample_id"]) == ["0", "1"]
    assert run.samples["ground_truth"].tolist() == [["tabby"], ["espresso"]]
    assert run.samples["top_class"].tolist()[1] == "espresso"  # EfficientNet-Lite0's answer (README photos table)
    assert set(run.ranking()["explainer"]) == {"gradient", "occlusion"}
    assert ns["saliency"].shape == (224, 224)
    assert type(ns["fig"]).__name__ == "Figure" and len(ns["fig"].axes) == 3
    assert (tmp_path / "summaries" / "notebook" / "manifest.json").is_file()
    assert not dash.running  # stopped by the example's last line
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{dash.url}/_stcore/health", timeout=2)
