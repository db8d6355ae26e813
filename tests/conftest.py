import sys
from pathlib import Path

import pytest

# Test helper modules (toy.py) import by name; model factories refer to "toy:colour_net".
sys.path.insert(0, str(Path(__file__).parent))


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
