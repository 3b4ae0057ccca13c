"""Bilinear profiles and per-period extrema: numba agrees with the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference import bilinear_ref, line_profile_ref, segment_extrema_ref
from iqa.kernels.bars import bilinear, line_profile, segment_extrema


def test_bilinear_random_and_edges():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(9, 11))
    ys = np.r_[rng.uniform(-1, 10, 200), 0, 8, 8.0, -1e-9]
    xs = np.r_[rng.uniform(-1, 12, 200), 0, 10, 10.0, 0]
    np.testing.assert_allclose(bilinear(img, ys, xs), bilinear_ref(img, ys, xs), equal_nan=True, atol=1e-12)
    assert bilinear(img, [8.0], [10.0])[0] == img[8, 10]            # exact at the last pixel
    assert np.isnan(bilinear(img, [-0.5], [3.0])[0])


def test_float32_image_read_in_place_same_result():
    """A float32 image (what the loader gives) is sampled without a float64 copy, same values."""
    rng = np.random.default_rng(5)
    img = rng.normal(0, 300, size=(30, 40)).astype(np.float32)
    img[4, 7] = np.nan
    ys, xs = rng.uniform(-1, 30, 500), rng.uniform(-1, 40, 500)
    np.testing.assert_array_equal(bilinear(img, ys, xs), bilinear(img.astype(np.float64), ys, xs))
    np.testing.assert_allclose(bilinear(img, ys, xs), bilinear_ref(img, ys, xs), equal_nan=True, atol=1e-9)
    args = (3.2, 4.1, 25.7, 28.9, 57, 4, 0.8)
    np.testing.assert_array_equal(line_profile(img, *args), line_profile(img.astype(np.float64), *args))
    np.testing.assert_allclose(line_profile(img, *args), line_profile_ref(img, *args), equal_nan=True, atol=1e-9)
    ints = np.arange(12, dtype=np.int16).reshape(3, 4)          # other dtypes are still widened
    np.testing.assert_array_equal(bilinear(ints, [1.5], [2.5]), [8.5])


def test_bilinear_linear_field_exact():
    y, x = np.mgrid[0:10, 0:10].astype(float)
    img = 2 * x - 3 * y + 1
    np.testing.assert_allclose(bilinear(img, [2.25, 7.5], [3.75, 0.1]), [2 * 3.75 - 3 * 2.25 + 1, 2 * 0.1 - 22.5 + 1])


@pytest.mark.parametrize("n_lines", [1, 4, 7])
def test_line_profile_matches(n_lines):
    rng = np.random.default_rng(n_lines)
    img = rng.normal(size=(40, 40))
    img[5, 5] = np.nan
    args = (img, 3.2, 4.1, 33.7, 28.9, 57, n_lines, 0.8)
    np.testing.assert_allclose(line_profile(*args), line_profile_ref(*args), equal_nan=True, atol=1e-12)
    tiny = (np.ones((1, 1)), 0.0, 0.0, 0.0, 0.0, 1, n_lines, 1.0)
    np.testing.assert_allclose(line_profile(*tiny), line_profile_ref(*tiny), equal_nan=True)


def test_segment_extrema():
    rng = np.random.default_rng(3)
    for period in (1.0, 2.5, 7.3, 10.0):
        p = rng.normal(size=43)
        p[4] = np.nan
        np.testing.assert_allclose(segment_extrema(p, period), segment_extrema_ref(p, period))
    square = np.tile([1.0] * 5 + [0.0] * 5, 4)
    assert segment_extrema(square, 10.0) == (1.0, 0.0)
    assert all(np.isnan(segment_extrema(np.full(5, np.nan), 2.0)))
