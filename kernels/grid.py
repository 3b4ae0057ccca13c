"""Grid-point detection for geometric-distortion phantoms (template match, peaks, sub-pixel centroid).

A distortion phantom shows a regular grid of small features (rods, holes or line crossings).
Their positions are found in three steps, each a plain function of arrays:

1. ``match_template(image, template)``: zero-mean normalised cross-correlation (NCC, Lewis 1995),
   in [-1, 1] and insensitive to intensity shading; NaN where the template leaves the image or
   the window is flat;
2. ``local_peaks(score, radius_px, min_score)``: pixels that are the maximum of their
   (2r+1)² window and at least ``min_score`` (plateaus keep the first pixel in row-major order);
3. ``refine_centroids(weights, ys, xs, radius_px)``: sub-pixel centre of mass of ``weights``
   (the caller's contrast image, >= 0) within a disk of ``radius_px`` about each peak.

Two helpers let a caller skip most of step 1: ``ncc_rank_k(image, template, rank)`` bounds the
NCC of every window (a separable pass with the template's rank-k SVD truncation, exact NCC within
``± rho``), and ``match_template_at(image, template, ys, xs)`` gives the exact NCC (bit for bit
``match_template``) at chosen centres only.

The residuals against the nominal grid are computed by the phantom module (a rigid least-squares
fit, AAPM Report 100, 2010, section on spatial linearity).  Plain NumPy references are in
:mod:`iqa.kernels._reference_flood`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["local_peaks", "match_template", "match_template_at", "ncc_rank_k", "refine_centroids"]


@njit(cache=True)
def _centred_template(template):
    """The template minus its mean, and its sum of squares (taps summed in (i, j) order)."""
    ty, tx = template.shape
    tmean = 0.0
    for i in range(ty):
        for j in range(tx):
            tmean += template[i, j]
    tmean /= ty * tx
    tss = 0.0
    tz = np.empty((ty, tx))
    for i in range(ty):
        for j in range(tx):
            d = template[i, j] - tmean
            tz[i, j] = d
            tss += d * d
    return tz, tss


@njit(cache=True)
def _match_template(image, template, out):
    # One output row at a time, each template tap added to a whole row of windows: the inner
    # loops run along x with no dependence between windows, so they vectorise (a per-window
    # double loop does not: a floating-point sum cannot be reordered without fastmath).  Every
    # window still sums its taps in (i, j) order, mean first and then the centred products.
    ny, nx = image.shape
    ty, tx = template.shape
    hy, hx = ty // 2, tx // 2
    npx = ty * tx
    tz, tss = _centred_template(template)
    if tss <= 0.0:
        return
    nw = nx - tx + 1                     # windows per row; window x0 is centred on x0 + hx
    if nw <= 0:
        return
    s = np.empty(nw)
    num = np.empty(nw)
    iss = np.empty(nw)
    for y in range(hy, ny - (ty - hy) + 1):
        y0 = y - hy
        s[:] = 0.0
        for i in range(ty):
            for j in range(tx):
                row = image[y0 + i, j:j + nw]
                for x in range(nw):
                    s[x] += row[x]
        num[:] = 0.0
        iss[:] = 0.0
        for x in range(nw):
            s[x] /= npx                  # the window means
        for i in range(ty):
            for j in range(tx):
                row = image[y0 + i, j:j + nw]
                t = tz[i, j]
                for x in range(nw):
                    d = row[x] - s[x]
                    num[x] += d * t
                    iss[x] += d * d
        for x in range(nw):
            # a non-finite pixel makes the window's sum non-finite: the window stays NaN
            if np.isfinite(s[x]) and iss[x] > 0.0:
                out[y, x + hx] = num[x] / np.sqrt(iss[x] * tss)


def _image_and_template(image, template) -> tuple[np.ndarray, np.ndarray]:
    """Both as C-contiguous float64 2-D arrays; the template must be finite."""
    image = np.ascontiguousarray(np.asarray(image), dtype=np.float64)
    template = np.ascontiguousarray(np.asarray(template), dtype=np.float64)
    if image.ndim != 2 or template.ndim != 2:
        raise ValueError(f"image and template must be 2-D, got {image.shape} and {template.shape}")
    if not np.isfinite(template).all():
        raise ValueError("template must be finite")
    return image, template


def match_template(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Zero-mean normalised cross-correlation of ``template`` centred on every pixel.

    Parameters
    ----------
    image : 2-D array (y, x).
    template : 2-D array; its centre is element ``(ty // 2, tx // 2)``.

    Returns
    -------
    float64 array of ``image``'s shape, values in [-1, 1]; NaN where the template does not fit
    inside the image, the window holds a non-finite pixel, or the window or template is flat.
    """
    image, template = _image_and_template(image, template)
    out = np.full(image.shape, np.nan, dtype=np.float64)
    if template.size and image.shape[0] >= template.shape[0] and image.shape[1] >= template.shape[1]:
        _match_template(image, template, out)
    return out


@njit(cache=True)
def _match_template_at(image, template, ys, xs, out):
    # The sums of _match_template for single windows, in the same order (mean over (i, j), then
    # the centred products over (i, j)): the same values bit for bit.
    ny, nx = image.shape
    ty, tx = template.shape
    hy, hx = ty // 2, tx // 2
    npx = ty * tx
    tz, tss = _centred_template(template)
    if tss <= 0.0:
        return
    for k in range(ys.shape[0]):
        y0, x0 = ys[k] - hy, xs[k] - hx
        if y0 < 0 or x0 < 0 or y0 + ty > ny or x0 + tx > nx:
            continue
        s = 0.0
        for i in range(ty):
            for j in range(tx):
                s += image[y0 + i, x0 + j]
        s /= npx
        num = 0.0
        iss = 0.0
        for i in range(ty):
            for j in range(tx):
                d = image[y0 + i, x0 + j] - s
                num += d * tz[i, j]
                iss += d * d
        if np.isfinite(s) and iss > 0.0:
            out[k] = num / np.sqrt(iss * tss)


def match_template_at(image: np.ndarray, template: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """:func:`match_template` at the centres ``(ys[k], xs[k])`` only: the same values, bit for bit."""
    image, template = _image_and_template(image, template)
    ys = np.ascontiguousarray(ys, dtype=np.int64).ravel()
    xs = np.ascontiguousarray(xs, dtype=np.int64).ravel()
    out = np.full(ys.shape, np.nan)
    if template.size and ys.size:
        _match_template_at(image, template, ys, xs, out)
    return out


@njit(cache=True, error_model="numpy")
def _ncc_rank_k(image, fa, fb, tk_sum, tnorm, out):
    ny, nx = image.shape
    nf, ty = fa.shape
    tx = fb.shape[1]
    nwy, nwx = ny - ty + 1, nx - tx + 1
    n = ty * tx
    # Row sums along x (factor sums, then plain and squared sums) of the last ty rows in a ring
    # buffer that stays in cache; each output row then sums its ty rows along y.  Every sum
    # starts at 0.0 and adds its terms in tap order (j, then i), as the two-array version did.
    h = np.empty((ty, nf + 2, nwx))
    acc = np.empty((nf + 2, nwx))
    num = np.empty(nwx)
    for y in range(ny):
        hy = h[y % ty]
        row = image[y]
        for q in range(nf):
            hq = hy[q]
            for x in range(nwx):
                hq[x] = 0.0
            j = 0
            while j + 4 <= tx:         # four taps per sweep, still added in tap order
                b0, b1, b2, b3 = fb[q, j], fb[q, j + 1], fb[q, j + 2], fb[q, j + 3]
                r0, r1, r2, r3 = row[j:j + nwx], row[j + 1:j + 1 + nwx], row[j + 2:j + 2 + nwx], row[j + 3:j + 3 + nwx]
                for x in range(nwx):
                    t = hq[x]
                    t += b0 * r0[x]
                    t += b1 * r1[x]
                    t += b2 * r2[x]
                    t += b3 * r3[x]
                    hq[x] = t
                j += 4
            while j < tx:
                b = fb[q, j]
                rj = row[j:j + nwx]
                for x in range(nwx):
                    hq[x] += b * rj[x]
                j += 1
        h1 = hy[nf]
        h2 = hy[nf + 1]
        for x in range(nwx):
            h1[x] = 0.0
            h2[x] = 0.0
        j = 0
        while j + 4 <= tx:
            r0, r1, r2, r3 = row[j:j + nwx], row[j + 1:j + 1 + nwx], row[j + 2:j + 2 + nwx], row[j + 3:j + 3 + nwx]
            for x in range(nwx):
                t1 = h1[x]
                t2 = h2[x]
                v0, v1, v2, v3 = r0[x], r1[x], r2[x], r3[x]
                t1 += v0
                t2 += v0 * v0
                t1 += v1
                t2 += v1 * v1
                t1 += v2
                t2 += v2 * v2
                t1 += v3
                t2 += v3 * v3
                h1[x] = t1
                h2[x] = t2
            j += 4
        while j < tx:
            rj = row[j:j + nwx]
            for x in range(nwx):
                v = rj[x]
                h1[x] += v
                h2[x] += v * v
            j += 1
        y0 = y - ty + 1
        if y0 < 0:
            continue
        for q in range(nf + 2):
            aq = acc[q]
            for x in range(nwx):
                aq[x] = 0.0
            i = 0
            while i + 4 <= ty:          # four rows per sweep, still added in row order
                g0, g1 = h[(y0 + i) % ty, q], h[(y0 + i + 1) % ty, q]
                g2, g3 = h[(y0 + i + 2) % ty, q], h[(y0 + i + 3) % ty, q]
                if q < nf:
                    a0, a1, a2, a3 = fa[q, i], fa[q, i + 1], fa[q, i + 2], fa[q, i + 3]
                    for x in range(nwx):
                        t = aq[x]
                        t += a0 * g0[x]
                        t += a1 * g1[x]
                        t += a2 * g2[x]
                        t += a3 * g3[x]
                        aq[x] = t
                else:
                    for x in range(nwx):
                        t = aq[x]
                        t += g0[x]
                        t += g1[x]
                        t += g2[x]
                        t += g3[x]
                        aq[x] = t
                i += 4
            while i < ty:
                hq = h[(y0 + i) % ty, q]
                if q < nf:
                    a = fa[q, i]
                    for x in range(nwx):
                        aq[x] += a * hq[x]
                else:
                    for x in range(nwx):
                        aq[x] += hq[x]
                i += 1
        for x in range(nwx):
            num[x] = 0.0
        for q in range(nf):
            aq = acc[q]
            for x in range(nwx):
                num[x] += aq[x]
        s1v = acc[nf]
        s2v = acc[nf + 1]
        orow = out[y0]
        for x in range(nwx):       # branch-free, so it vectorises (sqrt, division)
            s1 = s1v[x]
            s2 = s2v[x]
            energy = s2 - s1 * s1 / n
            val = (num[x] - s1 / n * tk_sum) / (np.sqrt(energy) * tnorm)
            orow[x] = val if energy > 1e-9 * s2 else orow[x]


def ncc_rank_k(image: np.ndarray, template: np.ndarray, rank: int) -> tuple[np.ndarray, float]:
    """NCC with the rank-``rank`` SVD truncation of the zero-mean template, and its error bound.

    Returns ``(a, rho)``: ``a[y0, x0] = <w − m, tz_k> / (|w − m|·|tz|)`` for the window with top-left
    corner ``(y0, x0)`` (shape ``(ny − ty + 1, nx − tx + 1)``), ``tz`` the zero-mean template,
    ``tz_k`` its rank-k truncation, ``w`` the window, ``m`` its mean; and ``rho = |tz − tz_k|/|tz|``.
    By Cauchy-Schwarz the exact NCC (:func:`match_template`) lies within ``a ± rho`` (plus
    rounding).  ``a`` is NaN where the window's centred energy is at most 1e-9 of its raw energy
    (the image offset is removed first): flat windows, or windows lost to cancellation.  One
    pass of ``(rank + 2)·(ty + tx)`` multiply-adds per pixel, against ``2·ty·tx`` for the match.
    """
    image = np.ascontiguousarray(np.asarray(image), dtype=np.float64)
    template = np.asarray(template, dtype=np.float64)
    ny, nx = image.shape
    ty, tx = template.shape
    out = np.full((max(ny - ty + 1, 0), max(nx - tx + 1, 0)), np.nan)
    tz = template - template.mean()
    tnorm = float(np.sqrt((tz * tz).sum()))
    if not tnorm > 0 or out.size == 0:
        return out, 0.0
    u, sv, vt = np.linalg.svd(tz)
    k = max(1, min(int(rank), sv.size))
    rho = float(np.sqrt((sv[k:] ** 2).sum())) / tnorm
    fa = np.ascontiguousarray((u[:, :k] * sv[:k]).T)
    fb = np.ascontiguousarray(vt[:k])
    tk_sum = float(sum(fa[q].sum() * fb[q].sum() for q in range(k)))
    _ncc_rank_k(image - float(image.mean()), fa, fb, tk_sum, tnorm, out)
    return out, rho


@njit(cache=True)
def _local_peaks(score, r, min_score, flags):
    ny, nx = score.shape
    for y in range(ny):
        for x in range(nx):
            v = score[y, x]
            if not (v >= min_score):          # also rejects NaN
                continue
            keep = True
            for yy in range(max(0, y - r), min(ny, y + r + 1)):
                for xx in range(max(0, x - r), min(nx, x + r + 1)):
                    if yy == y and xx == x:
                        continue
                    w = score[yy, xx]
                    if not np.isfinite(w):
                        continue
                    before = yy < y or (yy == y and xx < x)
                    if w > v or (before and w == v):
                        keep = False
                        break
                if not keep:
                    break
            if keep:
                flags[y, x] = True


def local_peaks(score: np.ndarray, radius_px: int, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the local maxima of ``score``.

    A pixel is a peak when ``score >= min_score`` and no finite pixel of its (2r+1)² window is
    larger; among equal values the first in row-major order wins.  NaN pixels are never peaks
    and never suppress one.

    Returns
    -------
    (ys, xs) int64 arrays in row-major order.
    """
    score = np.ascontiguousarray(np.asarray(score), dtype=np.float64)
    if score.ndim != 2:
        raise ValueError(f"score must be 2-D, got {score.shape}")
    r = int(radius_px)
    if r < 0:
        raise ValueError(f"radius_px must be >= 0, got {radius_px}")
    flags = np.zeros(score.shape, dtype=np.bool_)
    _local_peaks(score, r, float(min_score), flags)
    ys, xs = np.nonzero(flags)
    return ys.astype(np.int64), xs.astype(np.int64)


@njit(cache=True)
def _refine(weights, ys, xs, r, out):
    ny, nx = weights.shape
    ir = int(np.floor(r))
    r2 = r * r
    for k in range(ys.shape[0]):
        y0 = ys[k]
        x0 = xs[k]
        sw = 0.0
        sy = 0.0
        sx = 0.0
        for dy in range(-ir, ir + 1):
            for dx in range(-ir, ir + 1):
                if dy * dy + dx * dx > r2:
                    continue
                y = y0 + dy
                x = x0 + dx
                if y < 0 or y >= ny or x < 0 or x >= nx:
                    continue
                w = weights[y, x]
                if not np.isfinite(w) or w <= 0.0:
                    continue
                sw += w
                sy += w * y
                sx += w * x
        if sw > 0.0:
            out[k, 0] = sy / sw
            out[k, 1] = sx / sw
        else:
            out[k, 0] = np.nan
            out[k, 1] = np.nan


def refine_centroids(weights: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius_px: float) -> np.ndarray:
    """Sub-pixel centre of mass of ``weights`` in a disk of ``radius_px`` about each (y, x).

    Parameters
    ----------
    weights : 2-D array, the feature's contrast (>= 0 counts; negative and NaN pixels are ignored).
    ys, xs : integer seed positions (pixels).
    radius_px : disk radius (pixels): ``dy² + dx² <= r²``.

    Returns
    -------
    (n, 2) float64 array of (y, x) pixel coordinates; NaN rows where the disk holds no weight.
    """
    weights = np.ascontiguousarray(np.asarray(weights), dtype=np.float64)
    ys = np.ascontiguousarray(np.asarray(ys), dtype=np.int64)
    xs = np.ascontiguousarray(np.asarray(xs), dtype=np.int64)
    if weights.ndim != 2 or ys.shape != xs.shape or ys.ndim != 1:
        raise ValueError("weights must be 2-D and ys, xs 1-D of equal length")
    if not (radius_px >= 0):
        raise ValueError(f"radius_px must be >= 0, got {radius_px}")
    out = np.empty((ys.shape[0], 2), dtype=np.float64)
    _refine(weights, ys, xs, float(radius_px), out)
    return out
