"""Line sampling, level crossings and FWHM: fast path vs NumPy reference, plus analytic cases."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference_mr import (fwhm_ref, last_falling_ref, outer_crossings_ref, sample_line_ref,
                                       sample_rays_ref)
from iqa.kernels.profiles import fwhm, last_falling, outer_crossings, sample_line, sample_rays


@pytest.mark.parametrize("seed", range(8))
def test_sample_line_matches_reference(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 30, size=2))
    image = rng.normal(size=shape)
    start = rng.uniform(-3, max(shape) + 3, size=2)
    end = rng.uniform(-3, max(shape) + 3, size=2)
    n = int(rng.integers(0, 60))
    np.testing.assert_allclose(sample_line(image, start, end, n), sample_line_ref(image, start, end, n),
                               rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
def test_rays_and_last_falling_match_reference(seed):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(int(rng.integers(1, 40)), int(rng.integers(1, 40))))
    image[rng.random(image.shape) < 0.02] = np.nan
    angles = rng.uniform(0, 2 * np.pi, size=int(rng.integers(0, 12)))
    centre = rng.uniform(0, 40, size=2)
    n = int(rng.integers(0, 50))
    start = float(rng.uniform(0, 5))
    rays = sample_rays(image, centre, angles, 0.7, n, start_px=start)
    np.testing.assert_allclose(rays, sample_rays_ref(image, centre, angles, 0.7, n, start), rtol=1e-12,
                               atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(last_falling(rays, 0.1), last_falling_ref(rays, 0.1), equal_nan=True)


def test_rays_find_the_radius_of_a_disk():
    """Edge of a linear-edged cone ``clip(20.5 - r, 0, 1)`` at level 0.5 is at r = 20 along every ray."""
    yy, xx = np.mgrid[0:64, 0:64]
    image = np.clip(20.5 - np.hypot(yy - 31.0, xx - 32.0), 0.0, 1.0)
    angles = np.deg2rad([0, 90, 180, 270])             # axis-aligned rays sample exact pixel centres
    edge = last_falling(sample_rays(image, (31.0, 32.0), angles, 1.0, 30), 0.5)
    np.testing.assert_allclose(edge, 20.0, atol=1e-12)


def test_sample_line_is_exact_on_a_plane():
    """Bilinear interpolation reproduces a linear ramp exactly, including the last row/column."""
    yy, xx = np.mgrid[0:20, 0:30]
    image = 2.0 * yy + 0.5 * xx
    got = sample_line(image, (0.0, 0.0), (19.0, 29.0), 11)
    t = np.linspace(0, 1, 11)
    np.testing.assert_allclose(got, 2 * 19 * t + 0.5 * 29 * t, rtol=1e-12)
    assert np.isnan(sample_line(image, (-0.5, 3), (5, 3), 3)[0])


@pytest.mark.parametrize("seed", range(10))
def test_crossings_and_fwhm_match_reference(seed):
    rng = np.random.default_rng(50 + seed)
    p = rng.normal(size=int(rng.integers(2, 80)))
    if seed % 3 == 0:
        p[rng.integers(0, p.size)] = np.nan
    level = float(rng.normal(0, 0.5))
    np.testing.assert_allclose(outer_crossings(p, level), outer_crossings_ref(p, level), equal_nan=True)
    np.testing.assert_allclose(fwhm(p, level), fwhm_ref(p, level), equal_nan=True)


def test_edges_of_a_box_are_found_at_half_signal():
    """Linear edges with kinks on samples: the half-level points (10.5 and 42.0) are exact."""
    x = np.arange(60, dtype=float)
    p = np.clip((x - 8) / 5, 0, 1) * np.clip((44 - x) / 4, 0, 1) * 100.0
    first, last = outer_crossings(p, 50.0)
    np.testing.assert_allclose([first, last], [10.5, 42.0], atol=1e-12)


def test_fwhm_of_a_gaussian():
    """Gaussian σ = 4 samples: FWHM = 2·sqrt(2 ln 2)·σ; linear interpolation error < 0.05 sample."""
    x = np.arange(100, dtype=float)
    p = np.exp(-0.5 * ((x - 47.3) / 4.0) ** 2)
    width, left, right = fwhm(p, 0.5)
    assert abs(width - 2 * np.sqrt(2 * np.log(2)) * 4.0) < 0.05
    assert abs((left + right) / 2 - 47.3) < 0.02


def test_degenerate_profiles():
    assert all(np.isnan(outer_crossings(np.array([1.0]), 0.5)))
    assert all(np.isnan(fwhm(np.array([]), 0.5)))
    assert all(np.isnan(fwhm(np.array([0.1, 0.2]), 0.5)))            # peak below the level
    w, left, right = fwhm(np.array([1.0, 1.0, 0.0]), 0.5)             # no left fall
    assert np.isnan(left) and right == 1.5 and np.isnan(w)
    assert np.all(np.isnan(sample_line(np.ones((1, 5)), (0, 0), (0, 4), 4)))


@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (40, 31), (256, 256)])
def test_bilinear_inside_is_scipys_map_coordinates(shape):
    from scipy import ndimage as ndi

    from iqa.kernels._reference_mr import bilinear_inside_ref
    from iqa.kernels.profiles import bilinear_inside
    rng = np.random.default_rng(4)
    image = rng.normal(300.0, 100.0, shape)
    ys = rng.uniform(0, shape[0] - 1, 3000)
    xs = rng.uniform(0, shape[1] - 1, 3000)
    ys[:10], xs[10:20] = np.floor(ys[:10]), np.floor(xs[10:20])     # on grid lines
    got = bilinear_inside(image, ys, xs)
    np.testing.assert_array_equal(got, ndi.map_coordinates(image, np.vstack([ys, xs]), order=1))   # bit for bit
    np.testing.assert_allclose(got, bilinear_inside_ref(image, ys, xs), rtol=1e-12, atol=1e-9)
    edge = ys.copy()
    edge[5] = shape[0] - 1                                            # a tap would leave the image
    assert bilinear_inside(image, edge, xs) is None and bilinear_inside_ref(image, edge, xs) is None
    assert bilinear_inside(image, ys[:0], xs[:0]).shape == (0,)


@pytest.mark.parametrize("shape", [(1, 2, 2), (3, 5, 4), (10, 64, 61)])
def test_bilinear_planes_inside_is_scipys_map_coordinates(shape):
    from scipy import ndimage as ndi

    from iqa.kernels._reference_mr import bilinear_planes_inside_ref
    from iqa.kernels.profiles import bilinear_planes_inside
    rng = np.random.default_rng(7)
    stack = rng.normal(300.0, 100.0, shape)
    n = 2000
    ks = rng.integers(0, shape[0], n).astype(float)                  # one plane per point (the usual use)
    ks[:300] = rng.uniform(0, shape[0] - 1, 300)                      # and fractional planes
    ys = rng.uniform(0, shape[1] - 1, n)
    xs = rng.uniform(0, shape[2] - 1, n)
    ys[300:310], xs[310:320] = np.floor(ys[300:310]), np.floor(xs[310:320])
    ks[320] = shape[0] - 1                                            # last plane: the next one is clamped
    got = bilinear_planes_inside(stack, ks, ys, xs)
    want = ndi.map_coordinates(stack, np.vstack([ks, ys, xs]), order=1, mode="nearest", prefilter=False)
    np.testing.assert_array_equal(got, want)                          # bit for bit
    np.testing.assert_allclose(got, bilinear_planes_inside_ref(stack, ks, ys, xs), rtol=1e-12, atol=1e-9)
    # broadcasting: a (1, 10, 3)-style plane index against (m, 10, 3) points
    kb = np.arange(shape[0], dtype=float)[None, :, None]
    yb = rng.uniform(0, shape[1] - 1, (4, shape[0], 3))
    xb = rng.uniform(0, shape[2] - 1, (4, shape[0], 3))
    kk = np.broadcast_to(kb, yb.shape)
    np.testing.assert_array_equal(bilinear_planes_inside(stack, kb, yb, xb),
                                  ndi.map_coordinates(stack, [kk.ravel(), yb.ravel(), xb.ravel()], order=1,
                                                      mode="nearest", prefilter=False).reshape(yb.shape))
    # a non-finite neighbouring plane spoils the sample exactly as in scipy (zero weight times inf)
    if shape[0] > 1:
        bad = stack.copy()
        bad[1] = np.inf
        k0 = np.zeros(5)
        got = bilinear_planes_inside(bad, k0, ys[:5], xs[:5])
        want = ndi.map_coordinates(bad, np.vstack([k0, ys[:5], xs[:5]]), order=1, mode="nearest")
        np.testing.assert_array_equal(got, want)
        assert np.isnan(got).all()
    edge = ys.copy()
    edge[5] = shape[1] - 1                                            # a tap would leave the plane
    assert bilinear_planes_inside(stack, ks, edge, xs) is None and bilinear_planes_inside_ref(stack, ks, edge, xs) is None
    kbad = ks.copy()
    kbad[0] = shape[0] - 1 + 1e-9
    assert bilinear_planes_inside(stack, kbad, ys, xs) is None and bilinear_planes_inside_ref(stack, kbad, ys, xs) is None
    assert bilinear_planes_inside(stack, ks[:0], ys[:0], xs[:0]).shape == (0,)
