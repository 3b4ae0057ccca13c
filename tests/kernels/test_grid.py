"""kernels.grid (template match, peaks, centroids) against the NumPy reference and known truths."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels import _reference_flood as ref
from iqa.kernels.grid import local_peaks, match_template, refine_centroids


def _blob(shape, centre, sigma, amp=1.0):
    gy, gx = np.mgrid[0:shape[0], 0:shape[1]]
    return amp * np.exp(-((gy - centre[0]) ** 2 + (gx - centre[1]) ** 2) / (2 * sigma ** 2))


@pytest.mark.parametrize("shape,tshape", [((1, 1), (1, 1)), ((2, 3), (3, 3)), ((9, 7), (3, 5)),
                                          ((20, 20), (5, 5)), ((31, 17), (4, 6))])
@pytest.mark.parametrize("nan", [False, True])
def test_match_template_agrees_with_reference(shape, tshape, nan):
    rng = np.random.default_rng(5)
    image = rng.normal(size=shape)
    if nan:
        image[rng.random(shape) < 0.05] = np.nan
    template = rng.normal(size=tshape)
    np.testing.assert_allclose(match_template(image, template), ref.match_template_ref(image, template),
                               rtol=1e-10, atol=1e-12, equal_nan=True)


def test_match_template_flat_inputs_and_perfect_match():
    flat = np.ones((8, 8))
    assert np.isnan(match_template(flat, np.arange(9.0).reshape(3, 3))).all()      # flat window
    assert np.isnan(match_template(np.arange(64.0).reshape(8, 8), np.ones((3, 3)))).all()  # flat template
    image = _blob((15, 15), (7, 7), 1.5)
    score = match_template(3 * image + 10, image[4:11, 4:11])    # NCC ignores gain and offset
    assert score[7, 7] == pytest.approx(1.0)
    assert np.nanargmax(score) == 7 * 15 + 7


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (25, 30)])
@pytest.mark.parametrize("r", [0, 1, 3])
def test_local_peaks_agree_with_reference(shape, r):
    rng = np.random.default_rng(7)
    score = np.round(rng.random(shape), 1)          # rounded: plenty of ties
    score[rng.random(shape) < 0.1] = np.nan
    got = local_peaks(score, r, 0.3)
    want = ref.local_peaks_ref(score, r, 0.3)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_local_peaks_plateau_keeps_first():
    score = np.zeros((5, 5))
    score[2, 1:4] = 1.0
    ys, xs = local_peaks(score, 2, 0.5)
    assert list(zip(ys, xs)) == [(2, 1)]


def test_refine_centroids_recovers_subpixel_centre():
    true = (12.3, 17.8)
    image = _blob((30, 36), true, 1.6)
    got = refine_centroids(image, np.array([12]), np.array([18]), 6.0)
    np.testing.assert_allclose(got[0], true, atol=0.01)   # truncation at 3.7 sigma: bias < 0.01 px


@pytest.mark.parametrize("r", [0.0, 1.0, 2.5, 4.0])
def test_refine_centroids_agree_with_reference(r):
    rng = np.random.default_rng(9)
    w = rng.normal(size=(12, 14))
    w[rng.random(w.shape) < 0.1] = np.nan
    ys = np.array([0, 5, 11, 3])
    xs = np.array([0, 7, 13, 2])
    np.testing.assert_allclose(refine_centroids(w, ys, xs, r), ref.refine_centroids_ref(w, ys, xs, r),
                               rtol=1e-10, equal_nan=True)


def test_refine_centroids_empty_and_bad_input():
    assert refine_centroids(np.zeros((4, 4)), np.array([], dtype=int), np.array([], dtype=int), 2).shape == (0, 2)
    assert np.isnan(refine_centroids(np.zeros((4, 4)), np.array([1]), np.array([1]), 2)).all()
    with pytest.raises(ValueError):
        refine_centroids(np.zeros((4, 4)), np.array([1, 2]), np.array([1]), 2)


@pytest.mark.parametrize("shape,tshape", [((1, 1), (1, 1)), ((2, 3), (3, 3)), ((9, 7), (3, 5)), ((31, 17), (4, 6)),
                                          ((40, 40), (13, 13))])
@pytest.mark.parametrize("rank", [1, 2, 4])
def test_ncc_rank_k_agrees_with_reference_and_bounds_the_ncc(shape, tshape, rank):
    from iqa.kernels.grid import ncc_rank_k
    rng = np.random.default_rng(11)
    image = rng.normal(100.0, 5.0, size=shape)
    template = rng.normal(size=tshape)
    a, rho = ncc_rank_k(image, template, rank)
    a_ref, rho_ref = ref.ncc_rank_k_ref(image, template, rank)
    assert rho == pytest.approx(rho_ref, abs=1e-12)
    np.testing.assert_allclose(a, a_ref, rtol=1e-8, atol=1e-8, equal_nan=True)
    ty, tx = tshape
    exact = match_template(image, template)[ty // 2:ty // 2 + a.shape[0], tx // 2:tx // 2 + a.shape[1]]
    ok = np.isfinite(a) & np.isfinite(exact)
    assert (np.abs(exact[ok] - a[ok]) <= rho + 1e-9).all()


@pytest.mark.parametrize("shape,tshape", [((1, 1), (1, 1)), ((2, 3), (3, 3)), ((9, 7), (3, 5)), ((31, 17), (4, 6)),
                                          ((40, 40), (13, 13))])
@pytest.mark.parametrize("nan", [False, True])
def test_match_template_at_is_match_template(shape, tshape, nan):
    from iqa.kernels.grid import match_template_at
    rng = np.random.default_rng(12)
    image = rng.normal(100.0, 5.0, size=shape)
    if nan:
        image[rng.random(shape) < 0.05] = np.nan
    image[:2, :3] = 7.0                      # a flat corner
    template = rng.normal(size=tshape)
    ys, xs = np.divmod(np.arange(image.size), image.shape[1])
    np.testing.assert_array_equal(match_template_at(image, template, ys, xs), match_template(image, template).ravel())
