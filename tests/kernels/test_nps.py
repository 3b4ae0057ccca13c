"""NPS stacking: detrending matches lstsq; radial average matches the reference; Parseval holds."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference import add_power_ref, detrend_poly2_ref, radial_average_ref
from iqa.kernels.nps import add_power, detrend_poly2, nps_2d, radial_average


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


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 8, 5), (7, 16, 9)])
def test_add_power_matches_reference(shape):
    rng = np.random.default_rng(5)
    spec = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    acc0 = rng.normal(size=shape[1:])
    acc = acc0.copy()
    add_power(spec, acc)
    np.testing.assert_allclose(acc, add_power_ref(spec, acc0), rtol=1e-13)


def test_add_power_sums_in_order_like_numpy_mean():
    """Block by block in ROI order gives numpy's mean over axis 0 bit for bit (nps_2d relies on it)."""
    rng = np.random.default_rng(6)
    spec = np.fft.rfft2(rng.normal(0, 10, (23, 18, 18)))
    acc = np.zeros(spec.shape[1:])
    for s in range(0, 23, 4):
        add_power(spec[s:s + 4], acc)
    np.testing.assert_array_equal(acc / 23, (spec.real ** 2 + spec.imag ** 2).mean(axis=0))


@pytest.mark.parametrize("n_rois", [1, 5, 47])
def test_nps_blocks_match_whole_stack(n_rois):
    """The blocked NPS equals the one-shot formula: spectrum bit for bit, variance within rounding."""
    rng = np.random.default_rng(7)
    rois = rng.normal(0, 10, (n_rois, 66, 66)) + 40
    nps, fy, fx, var = nps_2d(rois, 0.5, 0.5, return_variance=True)
    res = detrend_poly2(rois)
    spec = np.fft.rfft2(res)
    half = (spec.real ** 2 + spec.imag ** 2).mean(axis=0)
    np.testing.assert_array_equal(nps[:, :34], half * 0.25 / 66 ** 2)
    assert var == pytest.approx(float(np.mean(res ** 2)), rel=1e-14)


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
