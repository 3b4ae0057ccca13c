"""Disk-mean search (PIU) fast path vs the plain NumPy reference, plus analytic cases."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels._reference_mr import disk_mean_map_ref, disk_offsets_ref, piu_search_ref
from iqa.kernels.uniformity import disk_halfwidths, disk_mean_map, piu_search


def _disk_mask(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


@pytest.mark.parametrize("radius", [0.0, 1.0, 1.5, 2.0, 3.7, 5.64])
def test_halfwidths_match_offsets(radius):
    hw = disk_halfwidths(radius)
    assert int(np.sum(2 * hw + 1)) == len(disk_offsets_ref(radius))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [0.0, 1.0, 2.5, 4.2])
def test_disk_mean_map_matches_reference_random(seed, radius):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 40, size=2))
    image = rng.normal(100, 20, size=shape)
    mask = rng.random(shape) < 0.9
    if seed % 2:
        image[rng.random(shape) < 0.05] = np.nan
    fast = disk_mean_map(image, mask, radius)
    ref = disk_mean_map_ref(image, mask, radius)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref))
    np.testing.assert_allclose(fast, ref, rtol=1e-12, equal_nan=True)  # prefix-sum rounding only


@pytest.mark.parametrize("seed", range(5))
def test_piu_search_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    image = rng.normal(1000, 30, size=(64, 64)).astype(np.float32)
    mask = _disk_mask(image.shape, 31.5, 30.2, 25)
    got = piu_search(image, mask, 3.3)
    ref = piu_search_ref(image, mask, 3.3)
    assert got[1] == ref[1] and got[3] == ref[3]
    np.testing.assert_allclose([got[0], got[2]], [ref[0], ref[2]], rtol=1e-12)


def test_piu_search_finds_planted_extremes():
    """A bright and a dark plateau planted inside a flat disk are found exactly at their centres."""
    image = np.full((80, 80), 500.0)
    mask = _disk_mask(image.shape, 40, 40, 35)
    image[_disk_mask(image.shape, 25, 40, 6)] = 700.0
    image[_disk_mask(image.shape, 55, 50, 6)] = 300.0
    low, low_yx, high, high_yx = piu_search(image, mask, 3.0)
    assert (low, high) == (300.0, 700.0)
    assert low_yx == (55, 50) or abs(low_yx[0] - 55) + abs(low_yx[1] - 50) <= 3  # plateau: first of the ties
    assert high_yx[0] in range(22, 29) and high_yx[1] in range(37, 44)


def test_disk_must_lie_wholly_inside_mask():
    """Extremes outside the mask, or whose disk crosses its edge, are not chosen."""
    image = np.full((50, 50), 10.0)
    image[0:5, :] = 1000.0       # outside the mask
    image[20, 45] = -1000.0      # inside the mask but within 2 px of its edge
    mask = np.zeros_like(image, dtype=bool)
    mask[10:48, 5:47] = True
    low, low_yx, high, _ = piu_search(image, mask, 2.0)
    assert high == 10.0
    # the -1000 pixel can only be covered by centres at least 2 px from the mask edge (x <= 44)
    assert low_yx[1] <= 44 and low < 10.0


def test_nan_pixel_invalidates_disks():
    image = np.full((30, 30), 5.0)
    image[15, 15] = np.nan
    means = disk_mean_map(image, np.ones_like(image, dtype=bool), 2.0)
    assert np.isnan(means[15, 15]) and np.isnan(means[13, 15]) and means[12, 15] == 5.0


def test_tiny_and_empty_inputs():
    with pytest.raises(ValueError, match="fits wholly"):
        piu_search(np.ones((3, 3)), np.ones((3, 3), dtype=bool), 2.0)
    assert piu_search(np.array([[7.0]]), np.array([[True]]), 0.0) == (7.0, (0, 0), 7.0, (0, 0))
    assert disk_mean_map(np.zeros((0, 4)), np.zeros((0, 4), dtype=bool), 1.0).shape == (0, 4)
    with pytest.raises(ValueError):
        disk_mean_map(np.ones((4, 4)), np.ones((3, 4), dtype=bool), 1.0)
    with pytest.raises(ValueError):
        disk_halfwidths(-1.0)
