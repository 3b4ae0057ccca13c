"""phantoms._masks: the labelling shortcuts equal the scipy.ndimage idioms they replace."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from iqa.phantoms._masks import fill_holes, largest_component


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (31, 40), (96, 96)])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.55, 0.8, 1.0])
def test_fill_holes_is_binary_fill_holes(shape, p):
    rng = np.random.default_rng(11)
    for _ in range(5):
        m = rng.random(shape) < p
        np.testing.assert_array_equal(fill_holes(m), ndimage.binary_fill_holes(m))


def test_fill_holes_fills_a_ring_but_not_a_notch():
    yy, xx = np.mgrid[0:40, 0:40]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    ring = (r2 < 15 ** 2) & (r2 > 6 ** 2)
    assert fill_holes(ring).sum() == (r2 < 15 ** 2).sum()
    notch = ring & ~((xx > 20) & (abs(yy - 20) < 2))      # the hole opens to the outside
    np.testing.assert_array_equal(fill_holes(notch), notch)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_largest_component(p):
    m = np.random.default_rng(3).random((50, 60)) < p
    lab, n = ndimage.label(m)
    sizes = np.bincount(lab.ravel())[1:]
    big = largest_component(m)
    assert big.sum() == sizes.max() and (lab[big] == lab[big][0]).all()
    assert largest_component(np.zeros((4, 4), bool)) is None
