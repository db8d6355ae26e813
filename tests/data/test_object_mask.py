"""Box-to-mask conversion, known answers at the edges (issue 19 item 5): a pixel is inside a box
when its centre is, minima inclusive and maxima exclusive (FORMAT.md); a box covering no pixel
centre gives no pixel, and no localisation."""

import numpy as np
import pytest

from xai_core.data import Box, object_mask

SIZE = (8, 8)


def rows(y0, y1):
    m = object_mask([Box(0, 0.0, y0, 8.0, y1)], None, 0, SIZE)
    return None if m is None else np.flatnonzero(m.any(axis=1)).tolist()


def cols(x0, x1):
    m = object_mask([Box(0, x0, 0.0, x1, 8.0)], None, 0, SIZE)
    return None if m is None else np.flatnonzero(m.any(axis=0)).tolist()


@pytest.mark.parametrize("lo, hi, want", [
    (2.5, 5.5, [2, 3, 4]),      # a minimum exactly on a pixel centre is inside; a maximum on one is not
    (2.0, 5.0, [2, 3, 4]),      # integer edges: rows 2..4, as the box [2, 5) reads
    (2.51, 5.49, [3, 4]),       # just past the centres
    (2.49, 5.51, [2, 3, 4, 5]),
    (0.0, 8.0, list(range(8))),
    (7.5, 8.0, [7]),
    (-3.0, 0.6, [0]),           # clipped to the image
    (2.0, 2.2, None),           # covers no pixel centre: no pixel, no localisation
    (2.6, 3.4, None),
    (3.4, 3.6, [3]),
])
def test_pixel_centre_inside_min_inclusive_max_exclusive(lo, hi, want):
    assert rows(lo, hi) == want
    assert cols(lo, hi) == want


def test_union_of_boxes_and_the_mask_first():
    m = object_mask([Box(1, 0, 0, 2, 2), Box(1, 5.5, 5.5, 6.5, 6.5), Box(0, 3, 3, 4, 4)], None, 1, SIZE)
    assert m.sum() == 4 + 1 and m[5, 5] and not m[6, 6] and not m[3, 3]
    mask = np.zeros(SIZE, np.uint8)
    mask[4, 4] = 2  # label 1
    assert object_mask([Box(1, 0, 0, 2, 2)], mask, 1, SIZE).sum() == 1
    assert object_mask([], mask, 0, SIZE) is None
