import sys
from pathlib import Path

import pytest

# Test helper modules (toy.py) import by name; model factories refer to "toy:colour_net".
sys.path.insert(0, str(Path(__file__).parent))
# served.py: the model servers the served-model and explanation-service tests share.
sys.path.insert(0, str(Path(__file__).parent / "models"))


@pytest.fixture(scope="session")
def demo_torchscript(tmp_path_factory) -> Path:
    from served import trace_demo_cnn

    return trace_demo_cnn(tmp_path_factory.mktemp("served") / "democnn.pt")


@pytest.fixture(scope="session")
def kserve(demo_torchscript, tmp_path_factory):
    """A real KServe ModelServer on 127.0.0.1 serving the demo CNN (TorchScript), started once
    per session. A missing server venv fails the tests, with the command that builds it."""
    from served import ServerError, kserve_server

    try:
        with kserve_server(demo_torchscript, tmp_path_factory.mktemp("kserve") / "server.log") as served:
            yield served
    except ServerError as e:
        pytest.fail(str(e))


@pytest.fixture
def toy_data(tmp_path):
    from toy import make_dataset

    return make_dataset(tmp_path / "data")


def pytest_configure(config):
    # Small tensors gain nothing from intra-op threads, and tests also start subprocesses
    # (Dask workers, the Streamlit server) that share the same 2 cores. A run's default
    # threads (xai_core/threads.py) and the subprocesses' torch read OMP_NUM_THREADS.
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
