"""Statistics of many circular ROIs at once (mean, SD with ddof=1, pixel count).

A circular ROI of radius ``r`` (pixels) about a sub-pixel centre ``(cy, cx)`` (pixels, array
index coordinates: row ``y`` down, column ``x`` right) holds every pixel whose *centre*
satisfies ``(y - cy)² + (x - cx)² <= r²``.  Pixels outside the image and non-finite pixels
(NaN, ±inf) are not counted, so ``n`` tells the caller whether the ROI was complete.

ROI statistics as in the ACR CT QC Manual (2017) and IEC 61223-3-5: the mean is the CT number,
the sample standard deviation (ddof = 1) the noise.  Two passes (mean, then squared deviations)
keep the SD exact for the large offsets of CT numbers (−1000 HU air) around small noise.

Public API (stable, used by the water, CatPhan and ACR CT pipelines)::

    circle_stats(stack, centres_yx, radii_px) -> (mean (z, k), sd (z, k), n (z, k))

The plain NumPy reference is :func:`iqa.kernels._reference.circle_stats_ref`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._arrays import float_stack

__all__ = ["circle_stats"]


@njit(cache=True)
def _row_span(cy, cx, r2, y, nx):
    """First and last column of row ``y`` whose pixel centres lie in the circle (x1 < x0: none)."""
    dy = y - cy
    rest = r2 - dy * dy
    if rest < 0.0:
        return 1, 0
    w = np.sqrt(rest)
    x0 = max(int(np.ceil(cx - w)), 0)
    x1 = min(int(np.floor(cx + w)), nx - 1)
    # the ceil/floor bounds are exact up to rounding; the centre test below settles the ends
    while x0 <= x1 and (x0 - cx) ** 2 + dy * dy > r2:
        x0 += 1
    while x1 >= x0 and (x1 - cx) ** 2 + dy * dy > r2:
        x1 -= 1
    return x0, x1


@njit(cache=True)
def _circle_stats(stack, cy, cx, rad, mean, sd, count):
    nz, ny, nx = stack.shape
    nk = cy.shape[0]
    for k in range(nk):
        r2 = rad[k] * rad[k]
        y0 = max(int(np.ceil(cy[k] - rad[k])), 0)
        y1 = min(int(np.floor(cy[k] + rad[k])), ny - 1)
        for z in range(nz):
            s = 0.0
            c = 0
            for y in range(y0, y1 + 1):
                x0, x1 = _row_span(cy[k], cx[k], r2, y, nx)
                for x in range(x0, x1 + 1):
                    v = np.float64(stack[z, y, x])
                    if np.isfinite(v):
                        s += v
                        c += 1
            count[z, k] = c
            if c == 0:
                mean[z, k] = np.nan
                sd[z, k] = np.nan
                continue
            m = s / c
            mean[z, k] = m
            if c < 2:
                sd[z, k] = np.nan
                continue
            # second pass: squared deviations about the mean (exact for large offsets)
            ss = 0.0
            for y in range(y0, y1 + 1):
                x0, x1 = _row_span(cy[k], cx[k], r2, y, nx)
                for x in range(x0, x1 + 1):
                    v = np.float64(stack[z, y, x])
                    if np.isfinite(v):
                        d = v - m
                        ss += d * d
            sd[z, k] = np.sqrt(ss / (c - 1))


def _prepare(stack, centres_yx, radii_px):
    arr = float_stack(stack)
    c = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
    r = np.broadcast_to(np.asarray(radii_px, dtype=np.float64), (c.shape[0],)).copy()
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(r)) and np.all(r >= 0)):
        raise ValueError("ROI centres and radii must be finite and radii >= 0")
    return arr, np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]), r


def circle_stats(stack: np.ndarray, centres_yx, radii_px) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, SD (ddof=1) and pixel count of circular ROIs on every slice.

    Parameters
    ----------
    stack : array (z, y, x) or (y, x)
        Image values (HU for CT).  Non-finite pixels are skipped.
    centres_yx : array (k, 2)
        ROI centres in pixels (row, column); sub-pixel values allowed.
    radii_px : float or array (k,)
        ROI radii in pixels.

    Returns
    -------
    mean, sd, n : arrays (z, k)
        ``mean`` is NaN where ``n == 0``, ``sd`` NaN where ``n < 2``; a 2-D input gives z = 1.
    """
    arr, cy, cx, r = _prepare(stack, centres_yx, radii_px)
    nz, nk = arr.shape[0], cy.shape[0]
    mean = np.empty((nz, nk))
    sd = np.empty((nz, nk))
    n = np.zeros((nz, nk), dtype=np.int64)
    _circle_stats(arr, cy, cx, r, mean, sd, n)
    return mean, sd, n
