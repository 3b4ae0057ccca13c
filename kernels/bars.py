"""Bar-pattern modulation: profiles sampled bilinearly across a bar group, peak/valley extraction.

A bar pattern of frequency ``f`` (line pairs per unit length) imaged with MTF(f) shows a profile
whose peak-to-valley swing, divided by the bar contrast, is the square-wave contrast transfer
CTF(f) = (4/π) Σ_{k odd} (−1)^((k−1)/2) MTF(k f)/k (Coltman 1954; ACR CT QC Manual 2017,
"high-contrast (spatial) resolution").  The profile is taken perpendicular to the bars and
averaged over several parallel lines to beat down noise.

Coordinates are pixels ``(y, x)`` (row, column); samples outside the image are NaN.

Public API (stable, used by the ACR CT and CatPhan pipelines)::

    bilinear(image, ys, xs) -> values
    line_profile(image, y0, x0, y1, x1, n_samples, n_lines, line_step_px) -> profile (n_samples,)
    segment_extrema(profile, period_samples) -> (mean of per-period maxima, mean of per-period minima)

Plain NumPy references: :func:`iqa.kernels._reference.line_profile_ref` and
:func:`iqa.kernels._reference.segment_extrema_ref`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._arrays import float_array

__all__ = ["bilinear", "line_profile", "segment_extrema"]


@njit(cache=True)
def _bilinear1(image, y, x):
    ny, nx = image.shape
    if not (y >= 0.0 and x >= 0.0 and y <= ny - 1 and x <= nx - 1):
        return np.nan
    iy = min(int(np.floor(y)), ny - 2) if ny > 1 else 0
    ix = min(int(np.floor(x)), nx - 2) if nx > 1 else 0
    fy = y - iy
    fx = x - ix
    iy1 = min(iy + 1, ny - 1)
    ix1 = min(ix + 1, nx - 1)
    v00 = image[iy, ix]
    v01 = image[iy, ix1]
    v10 = image[iy1, ix]
    v11 = image[iy1, ix1]
    return (v00 * (1 - fy) * (1 - fx) + v01 * (1 - fy) * fx
            + v10 * fy * (1 - fx) + v11 * fy * fx)


@njit(cache=True)
def _bilinear(image, ys, xs, out):
    for i in range(ys.shape[0]):
        out[i] = _bilinear1(image, ys[i], xs[i])


@njit(cache=True)
def _line_profile(image, y0, x0, y1, x1, n_samples, n_lines, step, out):
    length = np.sqrt((y1 - y0) ** 2 + (x1 - x0) ** 2)
    # unit normal to the line
    ny_ = -(x1 - x0) / length if length > 0 else 0.0
    nx_ = (y1 - y0) / length if length > 0 else 0.0
    for i in range(n_samples):
        t = i / (n_samples - 1) if n_samples > 1 else 0.0
        yc = y0 + t * (y1 - y0)
        xc = x0 + t * (x1 - x0)
        s = 0.0
        c = 0
        for j in range(n_lines):
            off = (j - (n_lines - 1) / 2.0) * step
            v = _bilinear1(image, yc + off * ny_, xc + off * nx_)
            if np.isfinite(v):
                s += v
                c += 1
        out[i] = s / c if c > 0 else np.nan


@njit(cache=True)
def _segment_extrema(profile, period):
    n = profile.shape[0]
    nseg = int(np.floor(n / period + 1e-9))
    smax = 0.0
    smin = 0.0
    cnt = 0
    for k in range(nseg):
        a = int(np.floor(k * period + 1e-9))
        b = min(int(np.floor((k + 1) * period + 1e-9)), n)
        hi = -np.inf
        lo = np.inf
        ok = False
        for i in range(a, b):
            v = profile[i]
            if np.isfinite(v):
                ok = True
                if v > hi:
                    hi = v
                if v < lo:
                    lo = v
        if ok:
            smax += hi
            smin += lo
            cnt += 1
    if cnt == 0:
        return np.nan, np.nan
    return smax / cnt, smin / cnt


def bilinear(image: np.ndarray, ys, xs) -> np.ndarray:
    """Bilinear interpolation of ``image`` at pixel coordinates ``(ys, xs)``; NaN outside."""
    img = float_array(image)      # float32 read as it is (kernels._arrays)
    ys = np.ascontiguousarray(np.atleast_1d(ys), dtype=np.float64).ravel()
    xs = np.ascontiguousarray(np.atleast_1d(xs), dtype=np.float64).ravel()
    out = np.empty(ys.size)
    _bilinear(img, ys, xs, out)
    return out


def line_profile(image: np.ndarray, y0: float, x0: float, y1: float, x1: float, n_samples: int,
                 n_lines: int = 1, line_step_px: float = 1.0) -> np.ndarray:
    """Profile from ``(y0, x0)`` to ``(y1, x1)`` (pixels), ``n_samples`` equally spaced points
    including both ends, each the mean of ``n_lines`` bilinear samples on parallel lines spaced
    ``line_step_px`` apart (centred on the nominal line).  NaN where no sample is inside."""
    if n_samples < 1 or n_lines < 1:
        raise ValueError("n_samples and n_lines must be >= 1")
    img = float_array(image)      # float32 read as it is (kernels._arrays)
    out = np.empty(int(n_samples))
    _line_profile(img, float(y0), float(x0), float(y1), float(x1), int(n_samples), int(n_lines),
                  float(line_step_px), out)
    return out


def segment_extrema(profile: np.ndarray, period_samples: float) -> tuple[float, float]:
    """Mean of the per-period maxima and of the per-period minima of a bar profile.

    The profile is cut into ``floor(n / period)`` consecutive segments one period long
    (boundaries at ``floor(k · period)``); each contributes its max (peak) and min (valley).
    Non-finite samples are skipped; segments with none are dropped.  Returns ``(nan, nan)`` when
    no segment is usable.
    """
    if not period_samples >= 1:
        raise ValueError("period_samples must be >= 1")
    p = np.ascontiguousarray(profile, dtype=np.float64)
    hi, lo = _segment_extrema(p, float(period_samples))
    return float(hi), float(lo)
