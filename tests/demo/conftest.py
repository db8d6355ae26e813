"""Shared fixtures for the demo dataset/model tests."""

import pytest

from xai_core.demo.dataset import generate_demo_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A tiny demo dataset (20 train + 20 test images); returns its folder."""
    out = tmp_path_factory.mktemp("demo_small")
    generate_demo_dataset(out, n_train=20, n_test=20, seed=0)
    return out
