import sys
from pathlib import Path

import pytest

# Test helper modules (toy.py) import by name; model factories refer to "toy:colour_net".
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def toy_data(tmp_path):
    from toy import make_dataset

    return make_dataset(tmp_path / "data")
