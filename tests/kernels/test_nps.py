"""NPS stacking: detrending matches lstsq; radial average matches the reference; Parseval holds."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference import detrend_poly2_ref, radial_average_ref
from iqa.kernels.nps import detrend_poly2, nps_2d, radial_average


def test_detrend_matches_lstsq():
    rng = np.random.default_rng(0)
    rois = rng.normal(0, 5, (4, 16, 16)) + 100
    np.testing.assert_allclose(detrend_poly2(rois), detrend_poly2_ref(rois), atol=1e-9)


def test_detrend_removes_quadratic_exactly():
    y, x = np.mgrid[0:12, 0:12].astype(float)
    surf = 3 + 0.2 * x - 0.1 * y + 0.05 * x * x + 0.01 * x * y - 0.03 * y * y
    np.testing.assert_allclose(detrend_poly2(surf), 0.0, atol=1e-10)


def test_parseval_integral_equals_variance():
    """TG-233: the integral of the NPS equals the variance of the detrended ROIs (exact)."""
    rng = np.random.default_rng(1)
    rois = rng.normal(0, 12.0, (10, 32, 32))
    dy, dx = 0.5, 0.6
    nps, fy, fx = nps_2d(rois, dy, dx)
    integral = nps.sum() * (1 / (32 * dy)) * (1 / (32 * dx))
    res = detrend_poly2(rois)
    assert integral == pytest.approx(np.mean(np.mean(res ** 2, axis=(1, 2))), rel=1e-10)


@pytest.mark.parametrize("shape", [(16, 16), (15, 20), (1, 3)])
def test_radial_average_matches_reference(shape):
    rng = np.random.default_rng(2)
    v = rng.normal(size=shape)
    if v.size > 3:
        v[0, 1] = np.nan
    fy, fx = np.fft.fftfreq(shape[0], 0.5), np.fft.fftfreq(shape[1], 0.7)
    got = radial_average(v, fy, fx, 0.05)
    ref = radial_average_ref(v, fy, fx, 0.05)
    np.testing.assert_array_equal(got[2], ref[2])
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, equal_nan=True)


def test_radial_average_of_radial_function():
    fy = fx = np.fft.fftfreq(64, 0.5)
    f = np.hypot(fy[:, None], fx[None, :])
    fc, mean, n = radial_average(f, fy, fx, 1 / 32)
    ok = n > 0
    np.testing.assert_allclose(mean[ok][3:], fc[ok][3:], rtol=0.05)   # ring mean ~ ring centre (few grid points in the first rings)
