"""Search for the darkest and brightest small disk inside a large ROI (percent integral uniformity).

ACR MRI Quality Control Manual / Large Phantom Test Guidance (2018), "Image intensity uniformity":
the mean of a ~1 cm² circular ROI is evaluated at every position where that ROI lies wholly
inside the large (~200 cm²) ROI; the lowest and highest such means give
``PIU = 100 * (1 - (high - low) / (high + low))``.  NEMA MS 3 uses the same search for flood
phantoms.

The small disk is the set of pixel offsets ``dy² + dx² <= radius_px²`` around a pixel centre.
A centre is *valid* when every pixel of its disk lies inside ``mask`` and every one of them is
finite.  Disk sums use per-row prefix sums, so a 512² image costs O(N² · 2r) operations.

Public API (stable, used by the flood and ACR MRI pipelines)::

    piu_search(image, mask, radius_px) -> (low_mean, low_yx, high_mean, high_yx)
    disk_mean_map(image, mask, radius_px) -> float64 map, NaN where the disk is not valid

Ties are broken by the first centre in row-major order.  The plain NumPy reference is
:func:`iqa.kernels._reference_mr.disk_mean_map_ref` / ``piu_search_ref``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["disk_halfwidths", "disk_mean_map", "piu_search"]


def disk_halfwidths(radius_px: float) -> np.ndarray:
    """Half-width (pixels) of the disk ``dy² + dx² <= r²`` for each row offset ``dy = -R..R``.

    ``R = floor(r)``; row ``dy`` covers ``dx`` in ``[-w, w]`` with ``w = floor(sqrt(r² - dy²))``.
    """
    r = float(radius_px)
    if not np.isfinite(r) or r < 0:
        raise ValueError(f"radius_px must be a finite number >= 0, got {radius_px!r}")
    big = int(np.floor(r + 1e-9))
    dy = np.arange(-big, big + 1, dtype=np.float64)
    # small epsilon so that exactly-on-the-circle offsets are included despite rounding
    return np.floor(np.sqrt(np.maximum(r * r - dy * dy, 0.0)) + 1e-9).astype(np.int64)


@njit(cache=True)
def _disk_mean_map(image, mask, halfw, out):
    """Fill ``out`` (float64, NaN-initialised) with disk means at every valid centre."""
    ny, nx = image.shape
    big = (halfw.shape[0] - 1) // 2
    # per-row prefix sums of values (NaN counted as 0), of usable pixels (inside mask and finite)
    csum = np.zeros((ny, nx + 1), dtype=np.float64)
    cok = np.zeros((ny, nx + 1), dtype=np.int64)
    for y in range(ny):
        s = 0.0
        c = 0
        for x in range(nx):
            v = image[y, x]
            if mask[y, x] and np.isfinite(v):
                s += v
                c += 1
            csum[y, x + 1] = s
            cok[y, x + 1] = c
    npix = 0
    for k in range(halfw.shape[0]):
        npix += 2 * halfw[k] + 1
    for y in range(big, ny - big):
        for x in range(0, nx):
            if cok[y, x + 1] == cok[y, x]:
                continue                 # the centre pixel is outside the mask or not finite
            total = 0.0
            count = 0
            ok = True
            for k in range(halfw.shape[0]):
                w = halfw[k]
                x0 = x - w
                x1 = x + w + 1
                if x0 < 0 or x1 > nx:
                    ok = False
                    break
                yy = y + k - big
                count += cok[yy, x1] - cok[yy, x0]
                total += csum[yy, x1] - csum[yy, x0]
            if ok and count == npix:
                out[y, x] = total / npix


def disk_mean_map(image: np.ndarray, mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Mean of ``image`` over the disk of ``radius_px`` around every pixel centre.

    Parameters
    ----------
    image : 2-D array (y, x), any real dtype; NaN pixels make a disk invalid.
    mask : 2-D bool array of the same shape; the region the whole disk must lie in.
    radius_px : disk radius in pixels (1 cm² at pixel size p mm: ``sqrt(100/pi)/p``).

    Returns
    -------
    float64 array (y, x): the disk mean, NaN where the disk is not wholly inside ``mask``,
    crosses the image border, or holds a non-finite pixel.
    """
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=np.bool_)
    if image.ndim != 2 or mask.shape != image.shape:
        raise ValueError(f"image must be 2-D and mask the same shape, got {image.shape} and {mask.shape}")
    halfw = disk_halfwidths(radius_px)
    out = np.full(image.shape, np.nan, dtype=np.float64)
    if image.size:
        _disk_mean_map(np.ascontiguousarray(image, dtype=np.float64), np.ascontiguousarray(mask), halfw, out)
    return out


def piu_search(image: np.ndarray, mask: np.ndarray, radius_px: float
               ) -> tuple[float, tuple[int, int], float, tuple[int, int]]:
    """Darkest and brightest disk mean whose disk lies wholly inside ``mask``.

    Returns
    -------
    (low_mean, (y, x) of low centre, high_mean, (y, x) of high centre), image units and pixel
    indices.  Ties go to the first centre in row-major order.

    Raises
    ------
    ValueError
        When no valid centre exists (mask too small for the disk, or all NaN).

    References
    ----------
    ACR Large and Medium Phantom Test Guidance (2018), image intensity uniformity;
    NEMA MS 3-2008, integral uniformity.
    """
    means = disk_mean_map(image, mask, radius_px)
    valid = np.isfinite(means)
    if not valid.any():
        raise ValueError(f"no disk of radius {radius_px:.2f} px fits wholly inside the mask")
    flat = np.where(valid, means, np.inf).ravel()
    lo = int(np.argmin(flat))
    flat = np.where(valid, means, -np.inf).ravel()
    hi = int(np.argmax(flat))
    nx = means.shape[1]
    return (float(means.flat[lo]), (lo // nx, lo % nx), float(means.flat[hi]), (hi // nx, hi % nx))
