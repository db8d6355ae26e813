import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dashboard"))
if str(ROOT) not in sys.path:  # `pages._common` is imported from the repository root
    sys.path.insert(0, str(ROOT))

import dash_runs  # noqa: E402


@pytest.fixture(scope="session")
def dash_logdir(tmp_path_factory):
    return dash_runs.shared_logdir(tmp_path_factory)
