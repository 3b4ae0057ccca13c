"""Plain NumPy references for the CT kernels (roi, esf, nps, bars): obviously correct, slow.

Each function mirrors a compiled kernel and is what ``tests/kernels`` compares it against.
"""
from __future__ import annotations

import numpy as np

__all__ = ["circle_stats_ref", "radial_bins_ref", "radial_average_ref", "detrend_poly2_ref", "add_power_ref",
           "bilinear_ref", "line_profile_ref", "segment_extrema_ref"]


def circle_stats_ref(stack, centres_yx, radii_px):
    """Reference for :func:`iqa.kernels.roi.circle_stats` using boolean masks."""
    arr = np.asarray(stack, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    c = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
    r = np.broadcast_to(np.asarray(radii_px, dtype=np.float64), (c.shape[0],))
    nz, ny, nx = arr.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    mean = np.full((nz, len(c)), np.nan)
    sd = np.full((nz, len(c)), np.nan)
    n = np.zeros((nz, len(c)), dtype=np.int64)
    for k, ((cy, cx), rk) in enumerate(zip(c, r)):
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= rk * rk
        for z in range(nz):
            v = arr[z][mask]
            v = v[np.isfinite(v)]
            n[z, k] = v.size
            if v.size:
                mean[z, k] = v.mean()
            if v.size > 1:
                sd[z, k] = v.std(ddof=1)
    return mean, sd, n


def radial_bins_ref(stack, cy, cx, r_min_px, r_max_px, bin_px, *, return_r=False):
    """Reference for :func:`iqa.kernels.esf.radial_bins` with ``np.bincount``."""
    arr = np.asarray(stack, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    nz, ny, nx = arr.shape
    cy = np.broadcast_to(np.asarray(cy, dtype=np.float64), (nz,))
    cx = np.broadcast_to(np.asarray(cx, dtype=np.float64), (nz,))
    nb = int(np.ceil((r_max_px - r_min_px) / bin_px - 1e-9))
    yy, xx = np.mgrid[0:ny, 0:nx]
    sums = np.zeros(nb)
    counts = np.zeros(nb, dtype=np.int64)
    rsums = np.zeros(nb)
    for z in range(nz):
        dy = yy - cy[z]
        dx = xx - cx[z]
        d2 = dy * dy + dx * dx
        r = np.sqrt(d2)
        b = np.floor((r - r_min_px) / bin_px).astype(np.int64)
        ok = (d2 < r_max_px * r_max_px) & (r >= r_min_px) & (b >= 0) & (b < nb) & np.isfinite(arr[z])
        sums += np.bincount(b[ok], weights=arr[z][ok], minlength=nb)[:nb]
        counts += np.bincount(b[ok], minlength=nb)[:nb]
        rsums += np.bincount(b[ok], weights=r[ok], minlength=nb)[:nb]
    return (sums, counts, rsums) if return_r else (sums, counts)


def radial_average_ref(values, fy, fx, bin_width):
    """Reference for :func:`iqa.kernels.nps.radial_average`."""
    v = np.asarray(values, dtype=np.float64)
    fy = np.asarray(fy, dtype=np.float64)
    fx = np.asarray(fx, dtype=np.float64)
    f = np.hypot(fy[:, None], fx[None, :])
    f_lim = min(np.abs(fy).max(), np.abs(fx).max())
    nb = int(np.floor(f_lim / bin_width + 0.5)) + 1
    b = np.floor(f / bin_width + 0.5).astype(np.int64)
    ok = (b < nb) & np.isfinite(v)
    sums = np.bincount(b[ok], weights=v[ok], minlength=nb)[:nb]
    counts = np.bincount(b[ok], minlength=nb)[:nb]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return np.arange(nb) * bin_width, mean, counts


def detrend_poly2_ref(rois):
    """Reference for :func:`iqa.kernels.nps.detrend_poly2`: one ``lstsq`` per ROI."""
    arr = np.asarray(rois, dtype=np.float64)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    n, ny, nx = arr.shape
    y, x = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nx), indexing="ij")
    a = np.stack([np.ones(ny * nx), x.ravel(), y.ravel(), x.ravel() ** 2, (x * y).ravel(), y.ravel() ** 2], 1)
    out = np.empty_like(arr)
    for i in range(n):
        coef, *_ = np.linalg.lstsq(a, arr[i].ravel(), rcond=None)
        out[i] = arr[i] - (a @ coef).reshape(ny, nx)
    return out[0] if squeeze else out


def add_power_ref(spec, acc):
    """Reference for :func:`iqa.kernels.nps.add_power`: ``acc + Σ_i |spec[i]|²`` (returned, not in place)."""
    return acc + (spec.real ** 2 + spec.imag ** 2).sum(axis=0)


def bilinear_ref(image, ys, xs):
    """Reference for :func:`iqa.kernels.bars.bilinear` (explicit four-neighbour weights)."""
    img = np.asarray(image, dtype=np.float64)
    ny, nx = img.shape
    ys = np.atleast_1d(np.asarray(ys, dtype=np.float64)).ravel()
    xs = np.atleast_1d(np.asarray(xs, dtype=np.float64)).ravel()
    out = np.full(ys.size, np.nan)
    for i, (y, x) in enumerate(zip(ys, xs)):
        if not (0 <= y <= ny - 1 and 0 <= x <= nx - 1):
            continue
        iy = min(int(np.floor(y)), max(ny - 2, 0))
        ix = min(int(np.floor(x)), max(nx - 2, 0))
        iy1, ix1 = min(iy + 1, ny - 1), min(ix + 1, nx - 1)
        fy, fx = y - iy, x - ix
        out[i] = (img[iy, ix] * (1 - fy) * (1 - fx) + img[iy, ix1] * (1 - fy) * fx
                  + img[iy1, ix] * fy * (1 - fx) + img[iy1, ix1] * fy * fx)
    return out


def line_profile_ref(image, y0, x0, y1, x1, n_samples, n_lines=1, line_step_px=1.0):
    """Reference for :func:`iqa.kernels.bars.line_profile`."""
    t = np.linspace(0.0, 1.0, n_samples) if n_samples > 1 else np.zeros(1)
    length = np.hypot(y1 - y0, x1 - x0)
    ny_, nx_ = ((-(x1 - x0) / length, (y1 - y0) / length) if length > 0 else (0.0, 0.0))
    offs = (np.arange(n_lines) - (n_lines - 1) / 2.0) * line_step_px
    ys = y0 + t[:, None] * (y1 - y0) + offs[None, :] * ny_
    xs = x0 + t[:, None] * (x1 - x0) + offs[None, :] * nx_
    vals = bilinear_ref(image, ys.ravel(), xs.ravel()).reshape(ys.shape)
    with np.errstate(invalid="ignore"):
        cnt = np.isfinite(vals).sum(1)
        s = np.nansum(vals, 1)
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


def segment_extrema_ref(profile, period_samples):
    """Reference for :func:`iqa.kernels.bars.segment_extrema`."""
    p = np.asarray(profile, dtype=np.float64)
    nseg = int(np.floor(p.size / period_samples + 1e-9))
    his, los = [], []
    for k in range(nseg):
        a = int(np.floor(k * period_samples + 1e-9))
        b = min(int(np.floor((k + 1) * period_samples + 1e-9)), p.size)
        seg = p[a:b]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            his.append(seg.max())
            los.append(seg.min())
    if not his:
        return np.nan, np.nan
    return float(np.mean(his)), float(np.mean(los))
