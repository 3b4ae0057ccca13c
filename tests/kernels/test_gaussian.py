"""kernels.gaussian: identical to scipy.ndimage.gaussian_filter, close to the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from iqa.kernels import _reference_flood as ref
from iqa.kernels.gaussian import gaussian_filter, gaussian_weights

SHAPES = [(1, 1), (1, 6), (3, 2), (9, 7), (40, 33), (128, 96)]
SIGMAS = [0.3, 0.5, 1.0, 2.7, 10.0, (1.0, 0.0), (0.0, 3.0), (10.3, 9.7)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "nearest"])
def test_gaussian_agrees_with_scipy_and_reference(shape, sigma, mode):
    rng = np.random.default_rng(3)
    image = rng.normal(50.0, 20.0, shape)
    got = gaussian_filter(image, sigma, mode=mode)
    # the same sums in the same order as scipy's symmetric correlate1d: bit for bit
    np.testing.assert_array_equal(got, ndi.gaussian_filter(image, sigma, mode=mode))
    np.testing.assert_allclose(got, ref.gaussian_filter_ref(image, sigma, mode=mode), rtol=1e-12, atol=1e-10)


def test_gaussian_nan_spreads_and_masks_and_dtypes():
    image = np.zeros((20, 20))
    image[10, 10] = np.nan
    got = gaussian_filter(image, 1.0, mode="constant")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ndi.gaussian_filter(image, 1.0, mode="constant")))
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:20, 8:30] = True
    np.testing.assert_array_equal(gaussian_filter(mask, 2.0, mode="constant"),
                                  ndi.gaussian_filter(mask.astype(np.float64), 2.0, mode="constant"))
    ints = np.arange(48, dtype=np.int16).reshape(6, 8)
    np.testing.assert_array_equal(gaussian_filter(ints, 1.5), ndi.gaussian_filter(ints.astype(np.float64), 1.5))


def test_gaussian_weights_sum_to_one_and_radius():
    w = gaussian_weights(10.0)
    assert w.shape == (41,)
    assert w[0] + 2 * w[1:].sum() == pytest.approx(1.0)
    assert gaussian_weights(1e-3).shape == (1,)
    with pytest.raises(ValueError):
        gaussian_filter(np.zeros(5), 1.0)
