"""Line profiles and sub-pixel level crossings (edges, FWHM).

* :func:`sample_line` — bilinear samples of an image along a straight segment (pixel-centre
  coordinates, ``(y, x)``); samples whose 2×2 neighbourhood leaves the image are NaN.
* :func:`bilinear_inside` — bilinear samples at arbitrary points, the arithmetic of
  ``scipy.ndimage.map_coordinates(order=1)`` step for step (same values bit for bit), for points
  whose 2×2 neighbourhood lies inside the image; None when any point does not (the caller then
  uses scipy and its boundary modes).
* :func:`bilinear_planes_inside` — the same for a stack of planes ``(nk, ny, nx)`` and a
  (usually integer) plane coordinate per point: ``map_coordinates(stack, [ks, ys, xs], order=1,
  mode="nearest")`` bit for bit, the plane axis clamped as scipy's ``nearest`` mode clamps it.
* :func:`outer_crossings` — first rising and last falling crossing of a level along a profile,
  linearly interpolated between samples: the edges of an object "at half the phantom signal"
  (ACR Large Phantom Test Guidance 2018, geometric accuracy; NEMA MS 2 edge definition).
* :func:`fwhm` — full width at a given level around the profile maximum, linearly
  interpolated (ACR slice-thickness ramps: FWHM of the ramp signal profile).

Positions are in samples (fractional); callers convert to mm with the sample step.
The plain NumPy references live in :mod:`iqa.kernels._reference_mr`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["bilinear_inside", "bilinear_planes_inside", "sample_line", "sample_rays", "outer_crossings", "last_falling", "fwhm"]


@njit(cache=True)
def _sample_line(image, y0, x0, y1, x1, n, out):
    ny, nx = image.shape
    for i in range(n):
        t = i / (n - 1) if n > 1 else 0.0
        y = y0 + (y1 - y0) * t
        x = x0 + (x1 - x0) * t
        if not (0.0 <= y <= ny - 1 and 0.0 <= x <= nx - 1):
            out[i] = np.nan
            continue
        iy = min(int(math.floor(y)), ny - 2)
        ix = min(int(math.floor(x)), nx - 2)
        fy = y - iy
        fx = x - ix
        out[i] = ((image[iy, ix] * (1 - fx) + image[iy, ix + 1] * fx) * (1 - fy)
                  + (image[iy + 1, ix] * (1 - fx) + image[iy + 1, ix + 1] * fx) * fy)


@njit(cache=True)
def _sample_rays(image, cy, cx, angles, step, n, start, out):
    for k in range(angles.shape[0]):
        c = math.cos(angles[k])
        s = math.sin(angles[k])
        end = start + step * (n - 1)
        _sample_line(image, cy - start * s, cx + start * c, cy - end * s, cx + end * c, n, out[k])


def sample_rays(image: np.ndarray, centre_yx: tuple[float, float], angles_rad: np.ndarray,
                step_px: float, n: int, start_px: float = 0.0) -> np.ndarray:
    """Bilinear samples along rays from ``centre_yx``: ``out[k, i]`` at distance ``start_px + i·step_px``.

    Ray ``k`` points along ``angles_rad[k]`` in the docs/conventions.md sense (x = cos θ,
    y = −sin θ, so 90° is up).  Same NaN rules as :func:`sample_line`.
    """
    image = np.ascontiguousarray(image, dtype=np.float64)
    angles = np.ascontiguousarray(angles_rad, dtype=np.float64).ravel()
    n = int(n)
    out = np.full((angles.size, max(n, 0)), np.nan)
    if n > 0 and image.ndim == 2 and image.shape[0] >= 2 and image.shape[1] >= 2:
        _sample_rays(image, float(centre_yx[0]), float(centre_yx[1]), angles, float(step_px), n, float(start_px), out)
    return out


def sample_line(image: np.ndarray, start_yx: tuple[float, float], end_yx: tuple[float, float],
                n: int) -> np.ndarray:
    """``n`` bilinear samples from ``start_yx`` to ``end_yx`` inclusive (pixel coordinates).

    Returns float64; a sample outside ``[0, ny-1] × [0, nx-1]`` is NaN, and so is every
    sample of an image smaller than 2 × 2.
    """
    image = np.ascontiguousarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    n = int(n)
    out = np.full(max(n, 0), np.nan)
    if n > 0 and image.shape[0] >= 2 and image.shape[1] >= 2:
        _sample_line(image, float(start_yx[0]), float(start_yx[1]), float(end_yx[0]), float(end_yx[1]), n, out)
    return out


@njit(cache=True)
def bilinear_nearest(image, y, x):
    """scipy ``map_coordinates(order=1, mode='nearest')`` at one point with ``0 <= y <= ny-1``,
    ``0 <= x <= nx-1``, bit for bit.

    scipy's NI_GeometricTransform for order 1: per axis t = c - floor(c), weights 1 - t and
    1 - (1 - t); the four taps in C order, each value times the y weight then the x weight,
    added to a sum that starts at 0.0; a tap beyond the last row or column is the edge pixel.
    Also called by :mod:`iqa.kernels.flood`; Numba's cache tracks only the caller's own file, so
    after changing this function delete that module's cache (``kernels/__pycache__/flood.*``).
    """
    ny, nx = image.shape
    fy = math.floor(y)
    fx = math.floor(x)
    wy0 = 1.0 - (y - fy)
    wy1 = 1.0 - wy0
    wx0 = 1.0 - (x - fx)
    wx1 = 1.0 - wx0
    iy = int(fy)
    ix = int(fx)
    jy = iy + 1 if iy + 1 < ny else ny - 1
    jx = ix + 1 if ix + 1 < nx else nx - 1
    t = 0.0
    c = image[iy, ix] * wy0
    t += c * wx0
    c = image[iy, jx] * wy0
    t += c * wx1
    c = image[jy, ix] * wy1
    t += c * wx0
    c = image[jy, jx] * wy1
    t += c * wx1
    return t


@njit(cache=True)
def _bilinear_inside(image, ys, xs, out):
    # inside the last row and column no tap is clamped, so any boundary mode gives this
    ny, nx = image.shape
    for k in range(ys.shape[0]):
        y = ys[k]
        x = xs[k]
        if not (0.0 <= y < ny - 1 and 0.0 <= x < nx - 1):
            return False
        out[k] = bilinear_nearest(image, y, x)
    return True


def bilinear_inside(image: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray | None:
    """``scipy.ndimage.map_coordinates(image, [ys, xs], order=1)`` when every point has
    ``0 <= y < ny − 1`` and ``0 <= x < nx − 1`` (no boundary mode involved), else None.

    Pixel-centre coordinates; returns float64 of ``ys``' shape.
    """
    image = np.ascontiguousarray(image, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    shape = ys.shape
    ys = np.ascontiguousarray(ys).ravel()
    xs = np.ascontiguousarray(xs, dtype=np.float64).ravel()
    if image.ndim != 2 or xs.shape != ys.shape:
        raise ValueError("bilinear_inside: a 2-D image and coordinate arrays of one shape are needed")
    out = np.empty(ys.shape)
    if not _bilinear_inside(image, ys, xs, out):
        return None
    return out.reshape(shape)


@njit(cache=True)
def _bilinear_planes_inside(stack, ks, ys, xs, out):
    # scipy's order-1 arithmetic in 3-D: per axis t = c - floor(c), weights 1 - t and 1 - (1 - t);
    # the eight taps in C order (plane, row, column), each value times the plane, row and column
    # weight in turn, added to a sum that starts at 0.0.  An integer plane coordinate gives the
    # next plane weight 0 (its taps add ±0, or NaN where they are not finite, as in scipy); the
    # plane index beyond the last one is clamped (scipy's "nearest" mode).
    nk, ny, nx = stack.shape
    for i in range(ys.shape[0]):
        k = ks[i]
        y = ys[i]
        x = xs[i]
        if not (0.0 <= y < ny - 1 and 0.0 <= x < nx - 1 and 0.0 <= k <= nk - 1):
            return False
        fk = math.floor(k)
        fy = math.floor(y)
        fx = math.floor(x)
        wk0 = 1.0 - (k - fk)
        wk1 = 1.0 - wk0
        wy0 = 1.0 - (y - fy)
        wy1 = 1.0 - wy0
        wx0 = 1.0 - (x - fx)
        wx1 = 1.0 - wx0
        k0 = int(fk)
        k1 = min(k0 + 1, nk - 1)
        iy = int(fy)
        ix = int(fx)
        t = 0.0
        c = stack[k0, iy, ix] * wk0
        c = c * wy0
        t += c * wx0
        c = stack[k0, iy, ix + 1] * wk0
        c = c * wy0
        t += c * wx1
        c = stack[k0, iy + 1, ix] * wk0
        c = c * wy1
        t += c * wx0
        c = stack[k0, iy + 1, ix + 1] * wk0
        c = c * wy1
        t += c * wx1
        c = stack[k1, iy, ix] * wk1
        c = c * wy0
        t += c * wx0
        c = stack[k1, iy, ix + 1] * wk1
        c = c * wy0
        t += c * wx1
        c = stack[k1, iy + 1, ix] * wk1
        c = c * wy1
        t += c * wx0
        c = stack[k1, iy + 1, ix + 1] * wk1
        c = c * wy1
        t += c * wx1
        out[i] = t
    return True


def bilinear_planes_inside(stack: np.ndarray, ks: np.ndarray, ys: np.ndarray,
                           xs: np.ndarray) -> np.ndarray | None:
    """``scipy.ndimage.map_coordinates(stack, [ks, ys, xs], order=1, mode="nearest")`` for a
    stack of planes ``(nk, ny, nx)`` when every point has ``0 <= k <= nk − 1``,
    ``0 <= y < ny − 1`` and ``0 <= x < nx − 1``, else None.

    With integer ``ks`` each point is the bilinear sample of its own plane (the typical use:
    one map per template element).  Pixel-centre coordinates; the coordinate arrays broadcast
    against each other; returns float64 of the broadcast shape.
    """
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    if stack.ndim != 3:
        raise ValueError("bilinear_planes_inside: a 3-D stack (planes, rows, columns) is needed")
    ks, ys, xs = np.broadcast_arrays(np.asarray(ks, dtype=np.float64), np.asarray(ys, dtype=np.float64),
                                     np.asarray(xs, dtype=np.float64))
    shape = ys.shape
    ks, ys, xs = (np.ascontiguousarray(a).ravel() for a in (ks, ys, xs))
    out = np.empty(ys.shape)
    if not _bilinear_planes_inside(stack, ks, ys, xs, out):
        return None
    return out.reshape(shape)


@njit(cache=True)
def _outer_crossings(profile, level):
    n = profile.shape[0]
    first = np.nan
    last = np.nan
    for i in range(n - 1):
        a = profile[i]
        b = profile[i + 1]
        if a < level <= b:
            first = i + (level - a) / (b - a)
            break
    for i in range(n - 2, -1, -1):
        a = profile[i]
        b = profile[i + 1]
        if a >= level > b:
            last = i + (a - level) / (a - b)
            break
    return first, last


def outer_crossings(profile: np.ndarray, level: float) -> tuple[float, float]:
    """(first rising, last falling) crossing of ``level`` in samples; NaN where there is none.

    A rising crossing is between samples ``a < level <= b``; a falling one ``a >= level > b``;
    the position is linearly interpolated.  NaN samples never form a crossing.
    """
    p = np.ascontiguousarray(profile, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("profile must be 1-D")
    if p.size < 2 or not math.isfinite(level):
        return (math.nan, math.nan)
    first, last = _outer_crossings(p, float(level))
    return (float(first), float(last))


@njit(cache=True)
def _last_falling(profiles, level, out):
    for k in range(profiles.shape[0]):
        out[k] = _outer_crossings(profiles[k], level)[1]


def last_falling(profiles: np.ndarray, level: float) -> np.ndarray:
    """Last falling crossing of ``level`` (samples) for each row of a 2-D array of profiles (NaN if none)."""
    p = np.ascontiguousarray(profiles, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError("profiles must be 2-D (one profile per row)")
    out = np.full(p.shape[0], np.nan)
    if p.shape[1] >= 2 and math.isfinite(level):
        _last_falling(p, float(level), out)
    return out


@njit(cache=True)
def _fwhm(profile, level, peak):
    n = profile.shape[0]
    left = np.nan
    right = np.nan
    i = peak
    while i > 0:
        a = profile[i - 1]
        b = profile[i]
        if not (a == a):
            break
        if a < level:
            left = (i - 1) + (level - a) / (b - a)
            break
        i -= 1
    i = peak
    while i < n - 1:
        a = profile[i]
        b = profile[i + 1]
        if not (b == b):
            break
        if b < level:
            right = i + (a - level) / (a - b)
            break
        i += 1
    return left, right


def fwhm(profile: np.ndarray, level: float) -> tuple[float, float, float]:
    """Width of the peak around the profile maximum at ``level`` (``(width, left, right)``, samples).

    Walks outward from the (first) maximum until a sample falls below ``level`` and
    interpolates linearly; NaN when the profile does not fall below ``level`` on a side
    (or meets NaN first), or when the maximum itself is below ``level``.
    """
    p = np.ascontiguousarray(profile, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError("profile must be 1-D")
    if p.size == 0 or not np.isfinite(p).any() or not math.isfinite(level):
        return (math.nan, math.nan, math.nan)
    peak = int(np.nanargmax(p))
    if p[peak] < level:
        return (math.nan, math.nan, math.nan)
    left, right = _fwhm(p, float(level), peak)
    return (float(right - left), float(left), float(right))
