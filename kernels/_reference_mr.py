"""Plain NumPy references for the MR kernels (``uniformity``, ``profiles``).

Written to be obviously correct, not fast: the tests in ``tests/kernels/`` check the
``@njit`` fast paths against these on random, NaN, edge and tiny inputs.
"""
from __future__ import annotations

import numpy as np


# --------------------------------------------------------------------------- uniformity

def disk_offsets_ref(radius_px: float) -> np.ndarray:
    """All (dy, dx) with dy² + dx² <= r² (same 1e-9 rounding guard as the fast path)."""
    big = int(np.floor(radius_px + 1e-9))
    out = []
    for dy in range(-big, big + 1):
        w = int(np.floor(np.sqrt(max(radius_px * radius_px - dy * dy, 0.0)) + 1e-9))
        for dx in range(-w, w + 1):
            out.append((dy, dx))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def disk_mean_map_ref(image: np.ndarray, mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Disk mean at every centre whose disk lies wholly inside ``mask`` with finite pixels, else NaN."""
    image = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    ny, nx = image.shape
    offs = disk_offsets_ref(radius_px)
    pad = int(np.floor(radius_px + 1e-9))
    big_img = np.zeros((ny + 2 * pad, nx + 2 * pad))
    big_ok = np.zeros((ny + 2 * pad, nx + 2 * pad), dtype=bool)
    usable = mask & np.isfinite(image)
    big_img[pad:pad + ny, pad:pad + nx] = np.where(usable, image, 0.0)
    big_ok[pad:pad + ny, pad:pad + nx] = usable
    total = np.zeros((ny, nx))
    allok = np.ones((ny, nx), dtype=bool)
    for dy, dx in offs:
        total += big_img[pad + dy:pad + dy + ny, pad + dx:pad + dx + nx]
        allok &= big_ok[pad + dy:pad + dy + ny, pad + dx:pad + dx + nx]
    return np.where(allok, total / len(offs), np.nan)


def piu_search_ref(image: np.ndarray, mask: np.ndarray, radius_px: float):
    means = disk_mean_map_ref(image, mask, radius_px)
    valid = np.isfinite(means)
    if not valid.any():
        raise ValueError("no disk fits wholly inside the mask")
    lo = int(np.argmin(np.where(valid, means, np.inf)))
    hi = int(np.argmax(np.where(valid, means, -np.inf)))
    nx = means.shape[1]
    return float(means.flat[lo]), (lo // nx, lo % nx), float(means.flat[hi]), (hi // nx, hi % nx)


# --------------------------------------------------------------------------- profiles

def sample_line_ref(image: np.ndarray, start_yx, end_yx, n: int) -> np.ndarray:
    """Bilinear samples along a segment; NaN outside [0, ny-1] x [0, nx-1] or for images < 2x2."""
    image = np.asarray(image, dtype=np.float64)
    ny, nx = image.shape
    out = np.full(max(int(n), 0), np.nan)
    if n <= 0 or ny < 2 or nx < 2:
        return out
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    ys = start_yx[0] + (end_yx[0] - start_yx[0]) * t
    xs = start_yx[1] + (end_yx[1] - start_yx[1]) * t
    for i, (y, x) in enumerate(zip(ys, xs)):
        if not (0 <= y <= ny - 1 and 0 <= x <= nx - 1):
            continue
        iy = min(int(np.floor(y)), ny - 2)
        ix = min(int(np.floor(x)), nx - 2)
        fy, fx = y - iy, x - ix
        out[i] = (image[iy, ix] * (1 - fy) * (1 - fx) + image[iy, ix + 1] * (1 - fy) * fx
                  + image[iy + 1, ix] * fy * (1 - fx) + image[iy + 1, ix + 1] * fy * fx)
    return out


def bilinear_inside_ref(image, ys, xs):
    """Bilinear samples at points with 0 <= y < ny-1 and 0 <= x < nx-1; None if any point is not."""
    image = np.asarray(image, dtype=np.float64)
    ys, xs = np.asarray(ys, dtype=np.float64), np.asarray(xs, dtype=np.float64)
    ny, nx = image.shape
    if not ((ys >= 0) & (ys < ny - 1) & (xs >= 0) & (xs < nx - 1)).all():
        return None
    iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - iy, xs - ix
    return (image[iy, ix] * (1 - fy) * (1 - fx) + image[iy, ix + 1] * (1 - fy) * fx
            + image[iy + 1, ix] * fy * (1 - fx) + image[iy + 1, ix + 1] * fy * fx)


def bilinear_planes_inside_ref(stack, ks, ys, xs):
    """Trilinear samples of a stack (planes, rows, columns), the plane index clamped at the last
    plane; None if any point's (y, x) 2×2 neighbourhood leaves the plane or k is outside [0, nk-1]."""
    stack = np.asarray(stack, dtype=np.float64)
    ks, ys, xs = (np.asarray(a, dtype=np.float64) for a in np.broadcast_arrays(ks, ys, xs))
    nk, ny, nx = stack.shape
    if not ((ys >= 0) & (ys < ny - 1) & (xs >= 0) & (xs < nx - 1) & (ks >= 0) & (ks <= nk - 1)).all():
        return None
    k0 = np.floor(ks).astype(int)
    k1 = np.minimum(k0 + 1, nk - 1)
    fk = ks - k0
    out = np.empty(ks.shape)
    for i in np.ndindex(ks.shape):
        a = bilinear_inside_ref(stack[k0[i]], ys[i], xs[i])
        b = bilinear_inside_ref(stack[k1[i]], ys[i], xs[i])
        out[i] = a * (1 - fk[i]) + b * fk[i]
    return out


def sample_rays_ref(image, centre_yx, angles_rad, step_px, n, start_px=0.0):
    out = np.full((len(angles_rad), max(int(n), 0)), np.nan)
    reach = start_px + step_px * (n - 1)
    for k, t in enumerate(angles_rad):
        begin = (centre_yx[0] - start_px * np.sin(t), centre_yx[1] + start_px * np.cos(t))
        end = (centre_yx[0] - reach * np.sin(t), centre_yx[1] + reach * np.cos(t))
        out[k] = sample_line_ref(image, begin, end, n)
    return out


def last_falling_ref(profiles, level):
    return np.array([outer_crossings_ref(p, level)[1] if len(p) >= 2 else np.nan for p in profiles])


def outer_crossings_ref(profile: np.ndarray, level: float) -> tuple[float, float]:
    p = np.asarray(profile, dtype=np.float64)
    a, b = p[:-1], p[1:]
    rising = np.flatnonzero((a < level) & (level <= b))
    falling = np.flatnonzero((a >= level) & (level > b))
    first = rising[0] + (level - a[rising[0]]) / (b[rising[0]] - a[rising[0]]) if rising.size else np.nan
    last = falling[-1] + (a[falling[-1]] - level) / (a[falling[-1]] - b[falling[-1]]) if falling.size else np.nan
    return float(first), float(last)


def fwhm_ref(profile: np.ndarray, level: float) -> tuple[float, float, float]:
    p = np.asarray(profile, dtype=np.float64)
    if p.size == 0 or not np.isfinite(p).any():
        return (np.nan, np.nan, np.nan)
    peak = int(np.nanargmax(p))
    if p[peak] < level:
        return (np.nan, np.nan, np.nan)
    left = right = np.nan
    for i in range(peak, 0, -1):
        if np.isnan(p[i - 1]):
            break
        if p[i - 1] < level:
            left = (i - 1) + (level - p[i - 1]) / (p[i] - p[i - 1])
            break
    for i in range(peak, p.size - 1):
        if np.isnan(p[i + 1]):
            break
        if p[i + 1] < level:
            right = i + (p[i] - level) / (p[i] - p[i + 1])
            break
    return (float(right - left), float(left), float(right))
