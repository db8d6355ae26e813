import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))

import pages_runs  # noqa: E402


@pytest.fixture(scope="session")
def pages_logdir(tmp_path_factory):
    """Runner-made runs of two models on the toy images, the demo-CNN run, an unrelated run."""
    return pages_runs.pages_logdir(tmp_path_factory)
