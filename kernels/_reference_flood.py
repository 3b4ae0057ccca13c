"""Plain NumPy references for the flood and grid kernels (``snr``, ``grid``, ``gaussian``).

Written to be obviously correct, not fast: ``tests/kernels/test_snr.py``,
``tests/kernels/test_grid.py`` and ``tests/kernels/test_gaussian.py`` check the ``@njit`` fast
paths against these on random, NaN, edge and tiny inputs.
"""
from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- snr


def masked_moments_ref(image, mask):
    v = np.asarray(image, dtype=np.float64)[np.asarray(mask, dtype=bool)]
    v = v[np.isfinite(v)]
    n = v.size
    mean = float(v.mean()) if n else np.nan
    sd = float(v.std(ddof=1)) if n > 1 else np.nan
    return n, mean, sd


def difference_moments_ref(a, b, mask):
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return masked_moments_ref(d, mask)


def background_moments_ref(image, mask, zero_level=0.0):
    image = np.asarray(image, dtype=np.float64)
    n, mean, sd = masked_moments_ref(image, mask)
    v = image[np.asarray(mask, dtype=bool)]
    v = v[np.isfinite(v)]
    return n, mean, sd, int(np.count_nonzero(v <= zero_level))


# --------------------------------------------------------------------------- grid


def match_template_ref(image, template):
    image = np.asarray(image, dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    ny, nx = image.shape
    ty, tx = template.shape
    hy, hx = ty // 2, tx // 2
    out = np.full(image.shape, np.nan)
    t = template - template.mean()
    tn = np.sqrt((t * t).sum())
    if tn == 0:
        return out
    for y in range(hy, ny - (ty - hy) + 1):
        for x in range(hx, nx - (tx - hx) + 1):
            w = image[y - hy:y - hy + ty, x - hx:x - hx + tx]
            if not np.isfinite(w).all():
                continue
            w = w - w.mean()
            wn = np.sqrt((w * w).sum())
            if wn > 0:
                out[y, x] = (w * t).sum() / (wn * tn)
    return out


def ncc_rank_k_ref(image, template, rank):
    image = np.asarray(image, dtype=np.float64)
    image = image - image.mean()
    tz = np.asarray(template, dtype=np.float64) - np.mean(template)
    u, sv, vt = np.linalg.svd(tz)
    k = max(1, min(rank, sv.size))
    tk = (u[:, :k] * sv[:k]) @ vt[:k]
    tnorm = np.sqrt((tz * tz).sum())
    ny, nx = image.shape
    ty, tx = tz.shape
    out = np.full((max(ny - ty + 1, 0), max(nx - tx + 1, 0)), np.nan)
    if not tnorm > 0 or out.size == 0:      # nothing to bound
        return out, 0.0
    for y in range(out.shape[0]):
        for x in range(out.shape[1]):
            w = image[y:y + ty, x:x + tx]
            wc = w - w.mean()
            energy = (wc * wc).sum()
            if energy > 1e-9 * (w * w).sum():
                out[y, x] = (wc * tk).sum() / (np.sqrt(energy) * tnorm)
    return out, float(np.sqrt((sv[k:] ** 2).sum()) / tnorm)


def local_peaks_ref(score, radius_px, min_score):
    score = np.asarray(score, dtype=np.float64)
    ny, nx = score.shape
    r = int(radius_px)
    ys, xs = [], []
    for y in range(ny):
        for x in range(nx):
            v = score[y, x]
            if not v >= min_score:
                continue
            ok = True
            for yy in range(max(0, y - r), min(ny, y + r + 1)):
                for xx in range(max(0, x - r), min(nx, x + r + 1)):
                    if (yy, xx) == (y, x) or not np.isfinite(score[yy, xx]):
                        continue
                    if score[yy, xx] > v or (score[yy, xx] == v and (yy, xx) < (y, x)):
                        ok = False
            if ok:
                ys.append(y)
                xs.append(x)
    return np.array(ys, dtype=np.int64), np.array(xs, dtype=np.int64)


def refine_centroids_ref(weights, ys, xs, radius_px):
    weights = np.asarray(weights, dtype=np.float64)
    ny, nx = weights.shape
    gy, gx = np.mgrid[0:ny, 0:nx]
    w = np.where(np.isfinite(weights) & (weights > 0), weights, 0.0)
    out = np.empty((len(ys), 2))
    for k, (y0, x0) in enumerate(zip(ys, xs)):
        disk = (gy - y0) ** 2 + (gx - x0) ** 2 <= radius_px * radius_px
        ww = w * disk
        s = ww.sum()
        out[k] = ((ww * gy).sum() / s, (ww * gx).sum() / s) if s > 0 else (np.nan, np.nan)
    return out


# --------------------------------------------------------------------------- gaussian


def gaussian_filter_ref(image, sigma, mode="reflect", truncate=4.0):
    """Separable Gaussian: pad each axis (``np.pad``), weighted sum of shifted copies, y then x."""
    out = np.asarray(image, dtype=np.float64).copy()
    sigmas = (sigma, sigma) if np.ndim(sigma) == 0 else tuple(sigma)
    pad_mode = {"constant": "constant", "reflect": "symmetric", "nearest": "edge"}[mode]
    for axis, s in enumerate(sigmas):
        s = float(s)
        if s <= 1e-15 or out.size == 0:
            continue
        r = int(truncate * s + 0.5)
        k = np.arange(-r, r + 1)
        w = np.exp(-0.5 * k ** 2 / (s * s))
        w /= w.sum()
        widths = [(0, 0), (0, 0)]
        widths[axis] = (r, r)
        padded = np.pad(out, widths, mode=pad_mode)
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for j, wj in enumerate(w):
            acc += wj * np.take(padded, np.arange(j, j + n), axis=axis)
        out = acc
    return out


# --------------------------------------------------------------------------- label, select


def largest_filled_ref(mask):
    """Largest 4-connected component (first in raster order among equal sizes), holes filled:
    breadth-first labelling, then the background reached from the border."""
    mask = np.asarray(mask, dtype=bool)
    ny, nx = mask.shape
    lab = np.zeros((ny, nx), dtype=np.int64)
    sizes = [0]
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
    for y0 in range(ny):
        for x0 in range(nx):
            if mask[y0, x0] and lab[y0, x0] == 0:
                sizes.append(0)
                k = len(sizes) - 1
                lab[y0, x0] = k
                todo = [(y0, x0)]
                while todo:
                    y, x = todo.pop()
                    sizes[k] += 1
                    for dy, dx in steps:
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < ny and 0 <= xx < nx and mask[yy, xx] and lab[yy, xx] == 0:
                            lab[yy, xx] = k
                            todo.append((yy, xx))
    if len(sizes) == 1:
        return None
    best = lab == int(np.argmax(sizes))
    outside = np.zeros((ny, nx), dtype=bool)
    todo = [(y, x) for y in range(ny) for x in range(nx)
            if (y in (0, ny - 1) or x in (0, nx - 1)) and not best[y, x]]
    for y, x in todo:
        outside[y, x] = True
    while todo:
        y, x = todo.pop()
        for dy, dx in steps:
            yy, xx = y + dy, x + dx
            if 0 <= yy < ny and 0 <= xx < nx and not best[yy, xx] and not outside[yy, xx]:
                outside[yy, xx] = True
                todo.append((yy, xx))
    return ~outside


def mask_moments_ref(mask):
    ys, xs = np.nonzero(np.asarray(mask, dtype=bool))
    if ys.size == 0:
        ny, nx = np.shape(mask)
        return 0, 0, 0, ny, -1, nx, -1
    return ys.size, int(ys.sum()), int(xs.sum()), int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())


def order_statistics_ref(values, ranks):
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if np.isnan(v).any():
        return np.full(np.size(ranks), np.nan)
    return v[np.asarray(ranks, dtype=np.int64)]


def shrunk_roi_ref(smooth, level, mask, centre_yx, k, box):
    """The signed function over the whole image, the box's sources by ``np.mgrid``, order-1
    bilinear samples written out (scipy's ``map_coordinates`` arithmetic); None when a source
    is outside ``[0, ny − 1) × [0, nx − 1)``."""
    smooth = np.asarray(smooth, dtype=np.float64)
    level = np.asarray(level, dtype=np.float64)
    signed = np.where(mask, smooth - 0.5 * level, np.minimum(smooth - 0.5 * level, -1e-9))
    cy, cx = centre_yx
    ya, yb, xa, xb = box
    roi = np.zeros(smooth.shape, dtype=bool)
    if yb <= ya or xb <= xa:
        return roi
    gy, gx = np.mgrid[ya:yb, xa:xb].astype(np.float64)
    y, x = cy + (gy - cy) / k, cx + (gx - cx) / k
    ny, nx = smooth.shape
    if not ((y >= 0) & (y < ny - 1) & (x >= 0) & (x < nx - 1)).all():
        return None
    roi[ya:yb, xa:xb] = _order1_ref(signed, y, x) > 0
    return roi


def _order1_ref(img, y, x):
    """scipy's order-1 ``map_coordinates`` arithmetic written out, mode 'nearest': taps floor(c)
    and floor(c) + 1 clamped to the image, weights 1 − t and 1 − (1 − t), products in C order."""
    ny, nx = img.shape
    fy, fx = np.floor(y), np.floor(x)
    wy0 = 1.0 - (y - fy)
    wy1 = 1.0 - wy0
    wx0 = 1.0 - (x - fx)
    wx1 = 1.0 - wx0
    iy, ix = fy.astype(int), fx.astype(int)
    jy, jx = np.minimum(iy + 1, ny - 1), np.minimum(ix + 1, nx - 1)
    t = 0.0 + (img[iy, ix] * wy0) * wx0
    t = t + (img[iy, jx] * wy0) * wx1
    t = t + (img[jy, ix] * wy1) * wx0
    return t + (img[jy, jx] * wy1) * wx1


def half_level_profile_ref(image, level, centre_yx, axis):
    """Order-1 interpolation written out (:func:`_order1_ref`), ``np.mean`` over the three lines."""
    image = np.asarray(image, dtype=np.float64)
    level = np.asarray(level, dtype=np.float64)
    ny, nx = image.shape
    cy, cx = centre_yx
    n = nx if axis == 1 else ny
    s = np.arange(n, dtype=np.float64)

    lines = []
    with np.errstate(invalid="ignore"):     # inf × 0 at a zero-weight tap is NaN, as in scipy
        for arr in (image, level):
            if axis == 1:
                lines.append([_order1_ref(arr, np.full(n, cy + off), s) for off in (-1.0, 0.0, 1.0)])
            else:
                lines.append([_order1_ref(arr, s, np.full(n, cx + off)) for off in (-1.0, 0.0, 1.0)])
    return np.mean(lines[0], axis=0) - 0.5 * np.mean(lines[1], axis=0)
