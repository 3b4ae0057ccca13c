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
