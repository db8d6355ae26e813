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


def _server_fixture(start, model_file, tmp_path_factory, name: str):
    """Yield the server ``start`` (a ``served.*_server``) runs; a missing venv or a server that does
    not come up fails the tests with the command or log that explains it."""
    from served import ServerError

    try:
        with start(model_file, tmp_path_factory.mktemp(name) / "server.log") as served:
            yield served
    except ServerError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def kserve(demo_torchscript, tmp_path_factory):
    """A real KServe ModelServer on 127.0.0.1 serving the demo CNN (TorchScript), started once
    per session."""
    from served import kserve_server

    yield from _server_fixture(kserve_server, demo_torchscript, tmp_path_factory, "kserve")


@pytest.fixture(scope="session")
def seldon(demo_torchscript, tmp_path_factory):
    """A real Seldon Core microservice (seldon-core's REST app in gunicorn) on 127.0.0.1 serving the
    demo CNN, started once per session (``tests/models/seldon_server.py``)."""
    from served import seldon_server

    yield from _server_fixture(seldon_server, demo_torchscript, tmp_path_factory, "seldon")


@pytest.fixture(scope="session")
def mlserver(demo_torchscript, tmp_path_factory):
    """A real MLServer 1.7 on 127.0.0.1 serving the demo CNN over V2, started once per session
    (``tests/models/mlserver_server.py``)."""
    from served import mlserver_server

    yield from _server_fixture(mlserver_server, demo_torchscript, tmp_path_factory, "mlserver")


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
