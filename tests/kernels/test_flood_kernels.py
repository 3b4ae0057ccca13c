"""kernels.flood: the signal ROI and the half-level profiles equal the references and the
NumPy / scipy forms they replaced, bit for bit."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from iqa.kernels import _reference_flood as ref
from iqa.kernels.profiles import bilinear_inside
from iqa.kernels.flood import half_level_profile, shrunk_roi


def _old(smooth, level, mask, centre, k, box):
    signed = np.where(mask, smooth - 0.5 * level, np.minimum(smooth - 0.5 * level, -1e-9))
    ya, yb, xa, xb = box
    gy, gx = np.mgrid[ya:yb, xa:xb].astype(np.float64)
    cy, cx = centre
    vals = bilinear_inside(signed, (cy + (gy - cy) / k).ravel(), (cx + (gx - cx) / k).ravel())
    if vals is None:
        return None
    roi = np.zeros(smooth.shape, dtype=bool)
    roi[ya:yb, xa:xb] = (vals > 0).reshape(yb - ya, xb - xa)
    return roi


def _disc(shape, seed, nan=False):
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    cy, cx = ny / 2 + rng.uniform(-2, 2), nx / 2 + rng.uniform(-2, 2)
    r = 0.35 * min(shape)
    smooth = np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 100.0, 2.0) + rng.normal(0, 5, shape)
    level = np.full(shape, 100.0) + rng.normal(0, 1, shape)
    if nan:
        smooth[rng.random(shape) < 0.02] = np.nan
    mask = smooth > 0.5 * level
    return smooth, level, mask, (float(yy[mask].mean()), float(xx[mask].mean()))


@pytest.mark.parametrize("shape", [(8, 9), (40, 33), (96, 128)])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("nan", [False, True])
def test_shrunk_roi_agrees_with_reference_and_old_form(shape, seed, nan):
    smooth, level, mask, (cy, cx) = _disc(shape, seed, nan)
    k = math.sqrt(0.75)
    ny, nx = shape
    box = (max(0, math.floor(cy - 0.4 * ny)), min(ny, math.ceil(cy + 0.4 * ny)),
           max(0, math.floor(cx - 0.4 * nx)), min(nx, math.ceil(cx + 0.4 * nx)))
    got = shrunk_roi(smooth, level, mask, (cy, cx), k, box)
    want = ref.shrunk_roi_ref(smooth, level, mask, (cy, cx), k, box)
    old = _old(smooth, level, mask, (cy, cx), k, box)
    if want is None:
        assert got is None and old is None
    else:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, old)


def test_shrunk_roi_border_and_empty_boxes():
    smooth, level, mask, c = _disc((30, 30), 4)
    assert shrunk_roi(smooth, level, mask, c, 0.5, (0, 30, 0, 30)) is None      # sources leave the image
    assert ref.shrunk_roi_ref(smooth, level, mask, c, 0.5, (0, 30, 0, 30)) is None
    assert not shrunk_roi(smooth, level, mask, c, 0.9, (5, 5, 0, 30)).any()
    with pytest.raises(ValueError):
        shrunk_roi(smooth, level, mask, c, 0.9, (0, 31, 0, 30))
    with pytest.raises(ValueError):
        shrunk_roi(smooth, level[:5], mask, c, 0.9, (0, 3, 0, 3))


def test_shrunk_roi_signed_function_edge_values():
    # exactly -1e-9 outside the mask, zeros and NaN: NumPy's minimum keeps NaN, the sample decides
    smooth = np.array([[0.0, 1.0, np.nan], [2e-9, -1e-9, 5.0], [1.0, 1.0, 1.0]])
    level = np.array([[0.0, 4.0, 1.0], [2e-9, 0.0, 1.0], [1.0, 1.0, 1.0]])
    mask = np.array([[False, True, False], [False, False, True], [True, False, True]])
    for box in ((0, 2, 0, 2), (0, 1, 0, 2), (1, 2, 1, 2)):
        for c in ((0.3, 0.7), (1.0, 1.0), (0.0, 0.0)):
            got = shrunk_roi(smooth, level, mask, c, 1.0, box)
            want = ref.shrunk_roi_ref(smooth, level, mask, c, 1.0, box)
            assert (got is None) == (want is None)
            if got is not None:
                np.testing.assert_array_equal(got, want)
                np.testing.assert_array_equal(got, _old(smooth, level, mask, c, 1.0, box))


def _scipy_profile(image, level, centre, axis):
    cy, cx = centre
    n = image.shape[1] if axis == 1 else image.shape[0]
    offsets = np.repeat([-1.0, 0.0, 1.0], n)
    along = np.tile(np.arange(n, dtype=np.float64), 3)
    coords = np.vstack([cy + offsets, along]) if axis == 1 else np.vstack([along, cx + offsets])
    with np.errstate(invalid="ignore"):
        prof = np.mean(ndi.map_coordinates(image, coords, order=1, mode="nearest").reshape(3, n), axis=0)
        half = 0.5 * np.mean(ndi.map_coordinates(level, coords, order=1, mode="nearest").reshape(3, n), axis=0)
        return prof - half


@pytest.mark.parametrize("shape", [(3, 3), (5, 9), (40, 33), (128, 96)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1])
def test_half_level_profile_is_scipys(shape, seed, axis):
    rng = np.random.default_rng(seed)
    image = rng.normal(100.0, 30.0, shape)
    level = rng.normal(150.0, 10.0, shape)
    if seed == 3:       # non-finite values, also on the last row/column (zero-weight taps)
        image[rng.random(shape) < 0.05] = np.nan
        image[-1, -1] = np.inf
        level[0, -1] = np.nan
    ny, nx = shape
    centres = [(1.0, 1.0), (ny - 2.0, nx - 2.0), (rng.uniform(1, ny - 2), rng.uniform(1, nx - 2)),
               (float(ny // 2), nx / 2 + 0.5)]
    for c in centres:
        with np.errstate(invalid="ignore"):     # inf x 0 without the JIT (NUMBA_DISABLE_JIT=1): NaN, as in scipy
            got = half_level_profile(image, level, c, axis)
        cross, n_cross = (c[0], ny) if axis == 1 else (c[1], nx)
        if not (cross - 1 >= 0 and cross + 1 <= n_cross - 1):
            assert got is None          # a line outside the image: the caller uses scipy
            continue
        np.testing.assert_array_equal(got, _scipy_profile(image, level, c, axis))
        np.testing.assert_array_equal(got, ref.half_level_profile_ref(image, level, c, axis))


def test_half_level_profile_lines_outside_the_image():
    image = np.ones((6, 7))
    assert half_level_profile(image, image, (0.5, 3.0), 1) is None        # line at y = -0.5
    assert half_level_profile(image, image, (2.0, 5.5), 0) is None        # line at x = 6.5
    assert half_level_profile(image, image, (2.0, 5.5), 1) is not None    # x lines only matter for axis 0
    with pytest.raises(ValueError):
        half_level_profile(image, image[:3], (2.0, 2.0), 1)
