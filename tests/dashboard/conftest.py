import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import dash_runs  # noqa: E402


@pytest.fixture(scope="session")
def dash_logdir(tmp_path_factory):
    """Logdir with the runner-made toy run, a synthetic run and broken runs (built once)."""
    return dash_runs.shared_logdir(tmp_path_factory)


@pytest.fixture(scope="session")
def synth_tables(dash_logdir):
    from xai_core.dashboard import RunTables

    return RunTables.load(dash_logdir / dash_runs.SYNTH_RUN, root=dash_logdir)
