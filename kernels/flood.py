"""Flood localisation kernels: the signal ROI (outline shrunk about the centroid) and the
half-level profiles through the centre, each in one pass.

Signal ROI
----------

``phantoms.flood.localize`` defines the ROI on the sub-pixel signed function
``s = smooth − level/2`` inside the phantom mask and ``min(smooth − level/2, −1e-9)`` outside
it: the ROI is every pixel ``p`` of the box whose source ``c + (p − c)/k`` (``k = √fraction``)
has a positive bilinear sample of ``s``.  Written with NumPy that is a full-image ``np.where``,
an ``np.mgrid`` of the box and :func:`iqa.kernels.profiles.bilinear_inside` (~0.5 ms on a 256²
slice); :func:`shrunk_roi` computes ``s`` only at the four taps of each sample (same arithmetic:
``0.5·level`` then the subtraction; NumPy's ``minimum`` keeps NaN) and the sources per row and
column (they are separable), ~0.1 ms.  Bilinear weights and the order of the four products are
those of ``bilinear_inside`` (scipy's order-1 ``map_coordinates``), so the ROI is identical.

Half-level profiles
-------------------
``phantoms.flood._profile_edges`` averages three parallel lines (±1 px) of the image and of the
level map through the centre and walks to the crossings of ``image − level/2``.  With scipy
that is four ``map_coordinates`` calls (order 1, mode ``nearest``) plus two means, ~0.15 ms per
axis; :func:`half_level_profile` samples both arrays in one loop with scipy's arithmetic (taps
``floor(c)`` and ``floor(c) + 1``, the upper one clamped to the last pixel, weights ``1 − t`` and
``1 − (1 − t)``, four products in C order added to 0.0 — a zero-weight tap still multiplies, so
an inf or NaN there gives NaN as in scipy) and NumPy's mean over the three lines
(``((l0 + l1) + l2) / 3``).

Plain NumPy references: :func:`iqa.kernels._reference_flood.shrunk_roi_ref` and
:func:`iqa.kernels._reference_flood.half_level_profile_ref` (scipy's ``map_coordinates``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .profiles import bilinear_nearest

__all__ = ["half_level_profile", "shrunk_roi"]


@njit(cache=True)
def _signed(smooth, level, mask, y, x):
    d = smooth[y, x] - 0.5 * level[y, x]
    if mask[y, x] or d != d or d < -1e-9:
        return d
    return -1e-9


@njit(cache=True)
def _shrunk_roi(smooth, level, mask, cy, cx, k, ya, yb, xa, xb, roi):
    ny, nx = smooth.shape
    sy = np.empty(yb - ya)
    sx = np.empty(xb - xa)
    for i in range(yb - ya):
        sy[i] = cy + (float(ya + i) - cy) / k
        if not (0.0 <= sy[i] < ny - 1):
            return False
    for j in range(xb - xa):
        sx[j] = cx + (float(xa + j) - cx) / k
        if not (0.0 <= sx[j] < nx - 1):
            return False
    for i in range(yb - ya):
        y = sy[i]
        fy = math.floor(y)
        wy0 = 1.0 - (y - fy)
        wy1 = 1.0 - wy0
        iy = int(fy)
        for j in range(xb - xa):
            x = sx[j]
            fx = math.floor(x)
            wx0 = 1.0 - (x - fx)
            wx1 = 1.0 - wx0
            ix = int(fx)
            t = 0.0
            c = _signed(smooth, level, mask, iy, ix) * wy0
            t += c * wx0
            c = _signed(smooth, level, mask, iy, ix + 1) * wy0
            t += c * wx1
            c = _signed(smooth, level, mask, iy + 1, ix) * wy1
            t += c * wx0
            c = _signed(smooth, level, mask, iy + 1, ix + 1) * wy1
            t += c * wx1
            roi[ya + i, xa + j] = t > 0
    return True


def shrunk_roi(smooth: np.ndarray, level: np.ndarray, mask: np.ndarray, centre_yx: tuple[float, float],
               k: float, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """Boolean ROI (image shape): pixels of ``box = (ya, yb, xa, xb)`` (half-open) whose source
    ``centre + (p − centre)/k`` has a positive bilinear sample of the signed function; None when
    a source lies outside ``[0, ny − 1) × [0, nx − 1)`` (the caller then uses scipy's border rule).
    """
    smooth = np.ascontiguousarray(smooth, dtype=np.float64)
    level = np.ascontiguousarray(level, dtype=np.float64)
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    if smooth.ndim != 2 or level.shape != smooth.shape or mask.shape != smooth.shape:
        raise ValueError("shrunk_roi: smooth, level and mask must be 2-D arrays of one shape")
    ya, yb, xa, xb = (int(v) for v in box)
    roi = np.zeros(smooth.shape, dtype=np.bool_)
    if yb <= ya or xb <= xa:
        return roi
    if not (0 <= ya and yb <= smooth.shape[0] and 0 <= xa and xb <= smooth.shape[1]):
        raise ValueError(f"shrunk_roi: box {box} outside an image of {smooth.shape}")
    if not _shrunk_roi(smooth, level, mask, float(centre_yx[0]), float(centre_yx[1]), float(k), ya, yb, xa, xb, roi):
        return None
    return roi


@njit(cache=True)
def _half_level_profile(image, level, cy, cx, axis, out):
    ny, nx = image.shape
    n = out.shape[0]
    for d in range(3):
        off = d - 1.0
        if axis == 1:
            if not (0.0 <= cy + off <= ny - 1):
                return False
        elif not (0.0 <= cx + off <= nx - 1):
            return False
    for i in range(n):
        s = float(i)
        p = 0.0
        q = 0.0
        for d in range(3):
            off = d - 1.0
            if axis == 1:
                a = bilinear_nearest(image, cy + off, s)
                b = bilinear_nearest(level, cy + off, s)
            else:
                a = bilinear_nearest(image, s, cx + off)
                b = bilinear_nearest(level, s, cx + off)
            if d == 0:
                p = a
                q = b
            else:
                p += a
                q += b
        out[i] = p / 3.0 - 0.5 * (q / 3.0)
    return True


def half_level_profile(image: np.ndarray, level: np.ndarray, centre_yx: tuple[float, float], axis: int
                       ) -> np.ndarray | None:
    """``mean of 3 lines of image − 0.5 · mean of 3 lines of level`` along image ``axis`` through
    ``centre_yx`` (lines at offsets −1, 0, +1 px; ``axis = 1``: rows, sampled at x = 0 … nx − 1).

    Bit for bit the scipy ``map_coordinates(order=1, mode='nearest')`` + ``np.mean(axis=0)`` form;
    None when a line lies outside the image (the caller then uses scipy's boundary rule).
    """
    image = np.ascontiguousarray(image, dtype=np.float64)
    level = np.ascontiguousarray(level, dtype=np.float64)
    if image.ndim != 2 or level.shape != image.shape or axis not in (0, 1):
        raise ValueError("half_level_profile: image and level must be 2-D arrays of one shape, axis 0 or 1")
    out = np.empty(image.shape[1] if axis == 1 else image.shape[0])
    if image.size == 0 or not _half_level_profile(image, level, float(centre_yx[0]), float(centre_yx[1]),
                                                  int(axis), out):
        return None
    return out
