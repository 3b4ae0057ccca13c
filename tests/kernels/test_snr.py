"""kernels.snr (NEMA MS 1 ROI moments) against the plain NumPy reference, plus the SNR formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest

from iqa.kernels import _reference_flood as ref
from iqa.kernels.snr import (RAYLEIGH_SD_FACTOR, background_moments, difference_moments, masked_moments,
                             snr_single, snr_subtraction)

CASES = [(1, 1), (1, 7), (3, 2), (17, 23), (64, 64)]


def _inputs(shape, seed, nan_fraction=0.0, offset=0.0):
    rng = np.random.default_rng(seed)
    image = rng.normal(offset, 5.0, shape)
    if nan_fraction:
        image[rng.random(shape) < nan_fraction] = np.nan
    mask = rng.random(shape) < 0.6
    return image, mask


@pytest.mark.parametrize("shape", CASES)
@pytest.mark.parametrize("nan_fraction", [0.0, 0.2])
def test_moments_agree_with_reference(shape, nan_fraction):
    image, mask = _inputs(shape, 1, nan_fraction, offset=1e6)   # large offset: two-pass precision
    got = masked_moments(image, mask)
    want = ref.masked_moments_ref(image, mask)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-10, equal_nan=True)


@pytest.mark.parametrize("shape", CASES)
def test_difference_and_background_agree_with_reference(shape):
    a, mask = _inputs(shape, 2, 0.1)
    b, _ = _inputs(shape, 3, 0.1)
    got = difference_moments(a, b, mask)
    want = ref.difference_moments_ref(a, b, mask)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-10, equal_nan=True)
    got = background_moments(a, mask, 0.5)
    want = ref.background_moments_ref(a, mask, 0.5)
    assert got[0] == want[0] and got[3] == want[3]
    np.testing.assert_allclose(got[1:3], want[1:3], rtol=1e-10, equal_nan=True)


def test_integer_inputs_do_not_wrap():
    """GE int16 and Siemens uint16: the difference must be taken in float64."""
    a = np.full((4, 4), 10, dtype=np.uint16)
    b = np.full((4, 4), 20, dtype=np.uint16)
    b[0, 0] = 22
    n, mean, sd = difference_moments(a, b, np.ones((4, 4), bool))
    assert n == 16 and mean == pytest.approx(-10.125)
    assert sd == pytest.approx(np.std(np.r_[-12.0, np.full(15, -10.0)], ddof=1))


def test_empty_and_single_pixel_masks():
    image = np.arange(9.0).reshape(3, 3)
    assert masked_moments(image, np.zeros((3, 3), bool))[0] == 0
    assert math.isnan(masked_moments(image, np.zeros((3, 3), bool))[1])
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    n, mean, sd = masked_moments(image, one)
    assert (n, mean) == (1, 4.0) and math.isnan(sd)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        masked_moments(np.zeros((3, 3)), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="same shape"):
        difference_moments(np.zeros((3, 3)), np.zeros((3, 4)), np.zeros((3, 3), bool))


def test_rayleigh_factor_matches_simulated_magnitude_noise():
    """SD of |complex Gaussian(σ)| is sqrt(2 - π/2)·σ (Henkelman 1985), the NEMA 0.655."""
    rng = np.random.default_rng(0)
    mag = np.abs(rng.normal(0, 3.0, 400_000) + 1j * rng.normal(0, 3.0, 400_000))
    assert RAYLEIGH_SD_FACTOR == pytest.approx(0.6551, abs=1e-4)
    np.testing.assert_allclose(mag.std() / 3.0, RAYLEIGH_SD_FACTOR, rtol=5e-3)   # SE of SD ~0.1 %


def test_snr_formulas():
    assert snr_single(100.0, 0.655 * 2.0, 0.655) == pytest.approx(50.0)
    assert snr_subtraction(100.0, 2.0 * math.sqrt(2.0)) == pytest.approx(50.0)
    assert math.isnan(snr_single(100.0, 0.0)) and math.isnan(snr_subtraction(100.0, float("nan")))


@pytest.mark.parametrize("first", [1e12, -1e9, 1e6 + 4.0])
def test_moments_keep_precision_when_the_first_pixel_is_an_outlier(first):
    """The sums are shifted by the first counted pixel; an outlier there must not cost digits."""
    image, mask = _inputs((17, 23), 4, 0.1, offset=1e6)
    image[0, 0], mask[0, 0] = first, True
    for got, want in ((masked_moments(image, mask), ref.masked_moments_ref(image, mask)),
                      (background_moments(image, mask, 1e6)[:3], ref.background_moments_ref(image, mask, 1e6)[:3]),
                      (difference_moments(image, 0.5 * image, mask), ref.difference_moments_ref(image, 0.5 * image, mask))):
        assert got[0] == want[0]
        np.testing.assert_allclose(got[1:], want[1:], rtol=1e-10)
