"""A real KServe ModelServer on 127.0.0.1 serving the demo CNN (TorchScript), for the served-model
tests (see ``served.py``). A missing server venv fails the tests, with the command that builds it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from served import ServerError, kserve_server, trace_demo_cnn  # noqa: E402


@pytest.fixture(scope="session")
def demo_torchscript(tmp_path_factory) -> Path:
    return trace_demo_cnn(tmp_path_factory.mktemp("served") / "democnn.pt")


@pytest.fixture(scope="session")
def kserve(demo_torchscript, tmp_path_factory):
    try:
        with kserve_server(demo_torchscript, tmp_path_factory.mktemp("kserve") / "server.log") as served:
            yield served
    except ServerError as e:
        pytest.fail(str(e))
