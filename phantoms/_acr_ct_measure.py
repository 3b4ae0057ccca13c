"""ACR CT 464 measurements that are specific to this phantom: wire-ramp slice width, BB
distance, bar-pattern square-wave contrast transfer.

Definitions from docs/conventions.md (ACR CT 464) and the ACR CT QC Manual (2017).
All positions are pixels ``(y, x)`` with spacing ``(dy, dx)`` in mm; angles follow the
conventions (counter-clockwise on screen from +x, 90° = 12 o'clock).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from iqa.kernels.bars import bilinear

from iqa.phantoms._acr_ct_locate import blob_centroid, point_px
from iqa.phantoms._fit import bisect_root, levenberg_marquardt
from iqa.phantoms._masks import box_about


def _frame(rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (x, y in image mm) of the phantom's +x (u) and 'up' (v) axes."""
    a = math.radians(rotation_deg)
    u = np.array([math.cos(a), -math.sin(a)])
    v = np.array([-math.sin(a), -math.cos(a)])
    return u, v


# --------------------------------------------------------------------------- slice width

@dataclass(frozen=True, slots=True)
class RampProfile:
    u_mm: np.ndarray          # position along the ramp (phantom x), mm
    profile: np.ndarray       # wire line integral across the ramp (HU·mm), background removed
    fwhm_u_mm: float          # plain FWHM along the ramp, mm
    peak_u_mm: float
    rect_u_mm: float          # fitted model rect(W) ⊗ Gaussian(s) along the ramp
    sigma_u_mm: float
    centre_u_mm: float


def ramp_profile(image: np.ndarray, spacing_yx_mm, centre_yx_px, rotation_deg: float, *, ramp_y_mm: float,
                 half_length_mm: float = 40.0, half_width_mm: float = 3.0,
                 background_band_mm: tuple[float, float] = (4.0, 7.0), fit_limit_mm: float = 30.0) -> RampProfile:
    """Profile along a slice-width wire ramp, integrated across the wire.

    The band ``|v − ramp_y| ≤ half_width`` (v the phantom's vertical axis) is sampled on a
    grid a quarter pixel along the ramp and half a pixel across, bilinearly; the sum across
    (× step) minus the background (median of the bands ``background_band_mm`` away on both
    sides) is the wire's line integral, independent of the in-plane blur across the wire.
    The profile within ``fit_limit_mm`` (the wire's extent) is also fitted with the usual SSP
    model, a rect of width W convolved with a Gaussian of SD s (least squares).
    """
    dy, dx = spacing_yx_mm
    px = min(dy, dx)
    uvec, vvec = _frame(rotation_deg)
    us = np.arange(-half_length_mm, half_length_mm + 1e-9, px / 4)
    vstep = px / 2
    vs = np.arange(-half_width_mm, half_width_mm + 1e-9, vstep)
    lo, hi = background_band_mm
    vb = np.concatenate([np.arange(-hi, -lo + 1e-9, vstep), np.arange(lo, hi + 1e-9, vstep)])

    def sample(v_off):
        xm = us[:, None] * uvec[0] + (ramp_y_mm + v_off)[None, :] * vvec[0]
        ym = us[:, None] * uvec[1] + (ramp_y_mm + v_off)[None, :] * vvec[1]
        coords = [centre_yx_px[0] + ym.ravel() / dy, centre_yx_px[1] + xm.ravel() / dx]
        return bilinear(image, coords[0], coords[1]).reshape(xm.shape)

    band = sample(vs)
    bg = float(np.nanmedian(sample(vb)))
    prof = (band - bg).sum(axis=1) * vstep
    fwhm, peak = fwhm_of(us, prof)
    w, sd, u0 = math.nan, math.nan, math.nan
    if math.isfinite(fwhm):
        sel = np.abs(us) <= fit_limit_mm
        w, sd, u0 = _fit_rect_gauss(us[sel], prof[sel], fwhm, peak, px)
    return RampProfile(us, prof, fwhm, peak, w, sd, u0)


def _fit_rect_gauss(u, p, fwhm0, peak0, px):
    """Least-squares fit of ``A·[Φ((u−c+W/2)/s) − Φ((u−c−W/2)/s)] + b`` (analytic Jacobian)
    over the peak and a margin of one FWHM plus 4 mm each side; returns (W, s, c)."""
    from scipy.special import ndtr

    ok = np.isfinite(p) & (np.abs(u - peak0) <= 1.5 * fwhm0 + 4.0)
    u, p = u[ok], p[ok]
    if u.size < 8:
        return math.nan, math.nan, math.nan
    amp0 = float(np.percentile(p, 95))
    inv_sqrt_2pi = 1.0 / math.sqrt(2 * math.pi)

    # unconstrained Levenberg-Marquardt (phantoms/_fit.py) on W = r², s = exp(l): positive by construction
    def parts(q):
        a, c, r, lg, b = q
        w, s = r * r, math.exp(lg)
        z1, z2 = (u - c + w / 2) / s, (u - c - w / 2) / s
        return a, r, w, s, z1, z2

    def resid(q):
        a, r, w, s, z1, z2 = parts(q)
        return a * (ndtr(z1) - ndtr(z2)) + q[4] - p

    def jac(q):
        a, r, w, s, z1, z2 = parts(q)
        g1, g2 = np.exp(-0.5 * z1 * z1) * inv_sqrt_2pi, np.exp(-0.5 * z2 * z2) * inv_sqrt_2pi
        return np.column_stack([ndtr(z1) - ndtr(z2), -a / s * (g1 - g2), a / (2 * s) * (g1 + g2) * 2 * r,
                                -a * (g1 * z1 - g2 * z2), np.ones_like(u)])

    q0 = [amp0, peak0, math.sqrt(0.8 * fwhm0), math.log(max(0.2 * fwhm0, px / 2)), 0.0]
    r = levenberg_marquardt(resid, jac, q0, max_nfev=200)
    w, sd, c = float(r.x[2] ** 2), float(math.exp(r.x[3])), float(r.x[1])
    if not (r.status > 0 and abs(c - peak0) <= fwhm0 and w <= 3 * fwhm0 and sd <= 2 * fwhm0):
        return math.nan, math.nan, math.nan
    return w, sd, c


def rect_gauss_fwhm(width: float, sigma: float) -> float:
    """FWHM of a rect of ``width`` convolved with a Gaussian of SD ``sigma`` (same units)."""
    from scipy.special import ndtr

    if sigma <= 0:
        return float(width)
    if width <= 0:
        return 2 * math.sqrt(2 * math.log(2)) * sigma
    f = lambda x: ndtr((x + width / 2) / sigma) - ndtr((x - width / 2) / sigma)  # noqa: E731
    half = 0.5 * f(0.0)
    return 2 * bisect_root(lambda x: f(x) - half, 0.0, width / 2 + 10 * sigma)


def fwhm_of(x: np.ndarray, y: np.ndarray, *, smooth_samples: float = 2.0) -> tuple[float, float]:
    """Full width at half maximum of a single-peaked profile (linear interpolation of the
    half-maximum crossings walking outwards from the peak); returns (fwhm, peak position).

    The maximum is taken on a lightly smoothed copy (Gaussian, ``smooth_samples`` SD) so noise
    does not inflate it; the crossings are located on the same copy.
    """
    ys = ndimage.gaussian_filter1d(np.asarray(y, dtype=np.float64), smooth_samples) if smooth_samples > 0 else y
    i = int(np.argmax(ys))
    peak = ys[i]
    if not peak > 0:
        return math.nan, math.nan
    half = 0.5 * peak
    j = i
    while j > 0 and ys[j - 1] > half:
        j -= 1
    k = i
    while k < ys.size - 1 and ys[k + 1] > half:
        k += 1
    if j == 0 or k == ys.size - 1:
        return math.nan, float(x[i])
    xl = x[j - 1] + (half - ys[j - 1]) / (ys[j] - ys[j - 1]) * (x[j] - x[j - 1])
    xr = x[k] + (ys[k] - half) / (ys[k] - ys[k + 1]) * (x[k + 1] - x[k])
    return float(xr - xl), float(x[i])


# --------------------------------------------------------------------------- BBs

@dataclass(frozen=True, slots=True)
class BBs:
    positions_yx_px: tuple[tuple[float, float], tuple[float, float]]
    distance_mm: float
    peak_hu: float
    slice_index: int


def find_bbs(stack: np.ndarray, spacing_yx_mm, centre_yx_px, rotation_deg: float, *, distance_mm: float,
             background_hu: float, search_mm: float = 6.0, window_mm: float = 2.5) -> BBs | None:
    """Locate the two distance BBs at ±distance/2 along the phantom's x axis.

    The slice (of ``stack``) with the strongest BB signal is used; each BB is the centroid of
    its contrast in a ``window_mm`` disk about its brightest pixel within ``search_mm`` of the
    nominal place.  Returns None when no BB stands out.
    """
    dy, dx = spacing_yx_mm
    nominal = [point_px(centre_yx_px, spacing_yx_mm, rotation_deg + a, distance_mm / 2) for a in (0.0, 180.0)]
    best = None
    for z in range(stack.shape[0]):
        img = stack[z]
        peaks, spots = [], []
        for (py, px_) in nominal:
            ry, rx = search_mm / dy, search_mm / dx
            y0, y1, x0, x1 = box_about((py, px_), (ry, rx), img.shape, margin=(0, 2))
            if y1 <= y0 or x1 <= x0:
                return None
            win = img[y0:y1, x0:x1]
            iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
            peaks.append(float(win[iy, ix]) - background_hu)
            spots.append((y0 + iy, x0 + ix))
        score = min(peaks)
        if best is None or score > best[0]:
            best = (score, z, spots)
    score, z, spots = best
    img = stack[z]
    # noise: SD of the ring around the BB search windows
    ring = _ring_sd(img, nominal, spacing_yx_mm, search_mm)
    if not score > 6 * ring:
        return None
    pos = tuple(blob_centroid(img, s, spacing_yx_mm, window_mm=window_mm, sign=1.0, background_hu=background_hu,
                              iterations=2) for s in spots)
    d = math.hypot((pos[0][0] - pos[1][0]) * dy, (pos[0][1] - pos[1][1]) * dx)
    return BBs(pos, d, score, z)


def _ring_sd(img, points, spacing_yx_mm, r_mm) -> float:
    dy, dx = spacing_yx_mm
    vals = []
    for (py, px_) in points:
        ry, rx = 2 * r_mm / dy, 2 * r_mm / dx
        y0, y1, x0, x1 = box_about((py, px_), (ry, rx), img.shape)
        yy = (np.arange(y0, y1)[:, None] - py) * dy
        xx = (np.arange(x0, x1)[None, :] - px_) * dx
        r2 = yy ** 2 + xx ** 2
        sel = (r2 > r_mm ** 2) & (r2 < (2 * r_mm) ** 2)
        vals.append(img[y0:y1, x0:x1][sel])
    v = np.concatenate(vals)
    return float(np.std(v, ddof=1)) if v.size > 2 else math.inf


# --------------------------------------------------------------------------- bars

@dataclass(frozen=True, slots=True)
class BarModulation:
    frequency_lpcm: float
    ctf: float                # (max − min of the square-wave response) / bar contrast
    n_pixels: int


def bar_ctf(image: np.ndarray, spacing_yx_mm, centre_yx_px, *, angle_deg: float, distance_mm: float,
            frequency_lpcm: float, contrast_hu: float, half_extent_mm: float = 5.5,
            harmonics: int = 5, max_condition: float = 30.0) -> BarModulation:
    """Square-wave contrast transfer of one bar block by phase folding.

    Bars run radially, so the response varies with the tangential coordinate ``t`` only.
    Every pixel within ``half_extent_mm`` of the block centre (both directions, clear of the
    block edges by a few PSF widths) is placed at its phase ``t mod P`` (P = 10/f mm) and a
    Fourier series of ``harmonics`` terms is fitted by least squares.  The fitted period is
    the square-wave response sampled finely without interpolation blur, even above the
    pixel Nyquist frequency when the pattern is oblique to the pixel grid.  Harmonics are
    dropped (from the highest) until the least-squares design is well conditioned
    (condition number < ``max_condition``); CTF is NaN when not even the fundamental is.
    CTF = (max − min of the fitted response) / contrast (Coltman 1954; docs/conventions.md).
    """
    dy, dx = spacing_yx_mm
    cy, cx = point_px(centre_yx_px, spacing_yx_mm, angle_deg, distance_mm)
    a = math.radians(angle_deg)
    rvec = np.array([math.cos(a), -math.sin(a)])            # (x, y) mm, radial
    tvec = np.array([math.sin(a), math.cos(a)])             # tangential
    reach = half_extent_mm * math.sqrt(2) + 1
    y0, y1, x0, x1 = box_about((cy, cx), (reach / dy, reach / dx), image.shape, margin=(0, 2))
    ym = (np.arange(y0, y1)[:, None] - cy) * dy
    xm = (np.arange(x0, x1)[None, :] - cx) * dx
    r = xm * rvec[0] + ym * rvec[1]
    t = xm * tvec[0] + ym * tvec[1]
    sel = (np.abs(r) <= half_extent_mm) & (np.abs(t) <= half_extent_mm)
    vals = image[y0:y1, x0:x1][sel].astype(np.float64)
    period = 10.0 / frequency_lpcm
    ph = 2 * np.pi * t[sel] / period
    # as many harmonics as the phases the pixels sample can carry: a pattern aligned with the
    # pixel grid at a period of a few pixels samples only a few distinct phases
    for k_max in range(harmonics, 0, -1):
        cols = [np.ones_like(ph)]
        for k in range(1, k_max + 1):
            cols += [np.cos(k * ph), np.sin(k * ph)]
        design = np.column_stack(cols)
        if np.linalg.cond(design) < max_condition:
            break
    else:
        return BarModulation(frequency_lpcm, math.nan, int(vals.size))
    coef, *_ = np.linalg.lstsq(design, vals, rcond=None)
    harmonics = k_max
    grid = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    wave = np.full_like(grid, coef[0])
    for k in range(1, harmonics + 1):
        wave += coef[2 * k - 1] * np.cos(k * grid) + coef[2 * k] * np.sin(k * grid)
    ctf = float((wave.max() - wave.min()) / contrast_hu)
    return BarModulation(frequency_lpcm, ctf, int(vals.size))
