"""kernels.label: identical to the scipy.ndimage idioms it replaces and to the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from iqa.kernels import _reference_flood as ref
from iqa.kernels.label import largest_filled, mask_moments

SHAPES = [(1, 1), (1, 7), (6, 1), (5, 3), (31, 40), (64, 48)]


def _scipy(mask):
    """The idiom: scipy's 4-connected label, the largest by ``argmax(bincount)``, then
    ``binary_fill_holes``."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.6, 0.8, 1.0])
def test_largest_filled_agrees_with_scipy_and_reference(shape, p):
    rng = np.random.default_rng(7)
    for _ in range(4):
        m = rng.random(shape) < p
        got, want, plain = largest_filled(m), _scipy(m), ref.largest_filled_ref(m)
        if want is None:
            assert got is None and plain is None
            continue
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, plain)
        np.testing.assert_array_equal(got, ndimage.binary_fill_holes(got))


def test_largest_filled_fills_a_ring_but_not_a_notch():
    yy, xx = np.mgrid[0:40, 0:40]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    ring = (r2 < 15 ** 2) & (r2 > 6 ** 2)
    assert largest_filled(ring).sum() == (r2 < 15 ** 2).sum()
    notch = ring & ~((xx > 20) & (abs(yy - 20) < 2))      # the hole opens to the outside
    np.testing.assert_array_equal(largest_filled(notch), notch)
    assert largest_filled(np.zeros((4, 4), bool)) is None


def test_largest_filled_ties_go_to_the_first_in_raster_order():
    m = np.zeros((9, 12), dtype=bool)
    m[5:8, 1:4] = True          # first in raster order: rows before the other's rows? no: this starts lower
    m[1:4, 7:10] = True         # same size, first pixel earlier in raster order
    got = largest_filled(m)
    np.testing.assert_array_equal(got, _scipy(m))
    assert got[2, 8] and not got[6, 2]
    # a U-shaped component whose two arms merge late keeps the lower label: same tie rule
    u = np.zeros((8, 10), dtype=bool)
    u[1:6, 1] = u[1:6, 3] = u[5, 1:4] = True        # 11 px, two provisional labels merged at row 5
    u[1:4, 6:9] = True
    u[4, 6:8] = True                                  # 11 px, starts at the same row, further right
    np.testing.assert_array_equal(largest_filled(u), _scipy(u))


def test_largest_filled_rings_spirals_and_border_holes():
    yy, xx = np.mgrid[0:60, 0:70]
    r2 = (yy - 30) ** 2 + (xx - 35) ** 2
    ring = (r2 < 25 ** 2) & (r2 > 8 ** 2)
    ring |= (r2 < 4 ** 2)                       # an island inside the hole: filled with it
    noisy = ring ^ (np.random.default_rng(2).random(ring.shape) < 0.05)
    edge = np.ones((20, 20), dtype=bool)
    edge[0, 5] = edge[10, 0] = False            # holes touching the border stay open
    edge[8:11, 8:11] = False
    for m in (ring, noisy, edge, ~edge, np.eye(15, dtype=bool), np.ones((4, 5), bool)):
        np.testing.assert_array_equal(largest_filled(m), _scipy(m))
        np.testing.assert_array_equal(largest_filled(m), ref.largest_filled_ref(m))


def test_largest_filled_input_checks():
    assert largest_filled(np.zeros((0, 5), bool)) is None
    assert largest_filled(np.zeros((3, 3), bool)) is None
    with pytest.raises(ValueError):
        largest_filled(np.zeros(5, bool))
    m = np.zeros((6, 6), dtype=np.uint8)
    m[1:4, 1:4] = 3
    m = m[:, ::-1]                              # non-contiguous, not bool
    np.testing.assert_array_equal(largest_filled(m), _scipy(m.astype(bool)))


@pytest.mark.parametrize("shape", SHAPES + [(0, 4)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.7])
def test_mask_moments_agree_with_reference(shape, p):
    m = np.random.default_rng(5).random(shape) < p
    assert mask_moments(m) == ref.mask_moments_ref(m)
    n, sy, sx, *_ = mask_moments(m)
    if n:
        ys, xs = np.nonzero(m)
        assert sy / n == ys.mean() and sx / n == xs.mean()     # the centroid bit for bit
