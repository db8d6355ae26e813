"""Fixtures of tests/metrics (the models themselves are in metric_models.py)."""

import numpy as np
import pytest
import torch
from metric_models import SIZE, MeanModel, handle


@pytest.fixture
def mean_model():
    return handle(MeanModel(), 2)


@pytest.fixture
def square_images():
    """(P=2, 3, 16, 16) black images with a white 8×8 square (a quarter of the area) at two
    places; masks (2, 16, 16) bool; object-first maps (object 1, background 0; ties broken by the seeded order)."""
    imgs = torch.zeros(2, 3, SIZE, SIZE)
    masks = np.zeros((2, SIZE, SIZE), dtype=bool)
    masks[0, 0:8, 0:8] = True
    masks[1, 6:14, 4:12] = True
    imgs[torch.from_numpy(masks).unsqueeze(1).expand(-1, 3, -1, -1)] = 1.0
    good = torch.from_numpy(masks).float()
    return imgs, masks, good
