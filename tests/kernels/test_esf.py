"""radial_bins (numba) agrees with the bincount reference; the ESF of a disk is right."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference import radial_bins_ref
from iqa.kernels.esf import radial_bins, radial_esf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random(seed):
    rng = np.random.default_rng(seed)
    stack = rng.normal(0, 1, (2, 33, 41))
    stack[0, 3:6, 4:9] = np.nan
    cy, cx = rng.uniform(-2, 35, 2), rng.uniform(-2, 43, 2)
    r_min, r_max = rng.uniform(0, 3), rng.uniform(5, 30)
    if seed == 2:
        r_min, r_max = 12.37, 19.9                           # thin annulus: two runs per row
    got = radial_bins(stack, cy, cx, r_min, r_max, 0.1, return_r=True)
    ref = radial_bins_ref(stack, cy, cx, r_min, r_max, 0.1, return_r=True)
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-12, atol=1e-9)


def test_tiny_and_outside():
    img = np.ones((1, 1))
    s, c = radial_bins(img, 0.0, 0.0, 0.0, 0.5, 0.1)
    assert c.tolist() == [1, 0, 0, 0, 0] and s[0] == 1.0
    s, c = radial_bins(img, 50.0, 50.0, 0.0, 3.0, 0.1)                 # centre far outside
    assert c.sum() == 0
    np.testing.assert_array_equal(radial_bins_ref(img, 50.0, 50.0, 0.0, 3.0, 0.1)[1], c)


def test_disk_edge_position():
    """A sharp disk of radius 10.25 px: the binned ESF steps from 1 to 0 at r = 10.25."""
    yy, xx = np.mgrid[0:64, 0:64]
    cy, cx = 31.3, 32.6
    img = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 10.25 ** 2).astype(float)
    r, esf, n = radial_esf(img, cy, cx, 5.0, 15.0, 0.1)
    ok = n > 0
    assert np.all(esf[ok & (r < 10.2)] == 1.0) and np.all(esf[ok & (r > 10.3)] == 0.0)
    edges = 5.0 + np.arange(r.size + 1) * 0.1
    assert np.all((r[ok] >= edges[:-1][ok] - 1e-12) & (r[ok] < edges[1:][ok]))   # mean radius inside its bin


def test_bad_range():
    with pytest.raises(ValueError):
        radial_bins(np.zeros((3, 3)), 1, 1, 5.0, 2.0, 0.1)
