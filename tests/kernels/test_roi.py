"""circle_stats (numba) agrees with the boolean-mask NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference import circle_stats_ref
from iqa.kernels.roi import circle_stats


def _check(stack, centres, radii):
    got = circle_stats(stack, centres, radii)
    ref = circle_stats_ref(stack, centres, radii)
    np.testing.assert_array_equal(got[2], ref[2])                         # same pixels counted
    np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-9, atol=1e-9, equal_nan=True)


def test_random_subpixel_centres():
    rng = np.random.default_rng(1)
    stack = rng.normal(0, 10, (3, 40, 50)).astype(np.float32) - 1000
    centres = rng.uniform(-3, 52, (25, 2))          # some partly / wholly outside the image
    radii = rng.uniform(0, 9, 25)
    _check(stack, centres, radii)


def test_nan_and_inf_skipped():
    rng = np.random.default_rng(2)
    img = rng.normal(5, 2, (30, 30))
    img[10:13, 10:20] = np.nan
    img[15, 15] = np.inf
    _check(img, [[12.3, 14.7], [15, 15], [0, 0]], [4.0, 0.5, 2.0])
    mean, sd, n = circle_stats(img, [[15, 15]], 0.4)
    assert n[0, 0] == 0 and np.isnan(mean[0, 0]) and np.isnan(sd[0, 0])


def test_tiny_and_edge():
    img = np.arange(4.0).reshape(2, 2)
    _check(img, [[0, 0], [0.5, 0.5], [1, 1], [5, 5]], [0.0, 1.0, 0.9, 1.0])
    mean, sd, n = circle_stats(img, [[0, 0]], 0.0)
    assert n[0, 0] == 1 and mean[0, 0] == 0 and np.isnan(sd[0, 0])   # one pixel: no SD


def test_known_values():
    """Exact: a constant disk of 7 on 0 gives mean 7, SD 0; ddof=1 on a two-value field."""
    img = np.zeros((21, 21))
    img[::2] = 1.0                                    # rows alternate 1, 0
    mean, sd, n = circle_stats(img, [[10, 10]], 10.0)
    ref_vals = img[(np.mgrid[0:21, 0:21][0] - 10) ** 2 + (np.mgrid[0:21, 0:21][1] - 10) ** 2 <= 100]
    assert n[0, 0] == ref_vals.size
    assert mean[0, 0] == pytest.approx(ref_vals.mean(), rel=1e-12)
    assert sd[0, 0] == pytest.approx(ref_vals.std(ddof=1), rel=1e-12)


def test_large_offset_precision():
    """Two-pass SD keeps precision at -1000 HU offsets (a one-pass formula loses digits)."""
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, (64, 64))
    _, sd, _ = circle_stats(noise - 1e6, [[32, 32]], 20)
    _, sd0, _ = circle_stats(noise, [[32, 32]], 20)
    assert sd[0, 0] == pytest.approx(sd0[0, 0], rel=1e-6)


def test_rejects_bad_radius():
    with pytest.raises(ValueError):
        circle_stats(np.zeros((4, 4)), [[1, 1]], -1.0)
