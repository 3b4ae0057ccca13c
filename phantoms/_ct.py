"""Shared CT measurement helpers: phantom outline, ROI statistics in mm, TG-233 MTF and NPS, linearity.

Used by the water-cylinder, CatPhan 604 and ACR CT 464 pipelines.  Everything is a plain
function taking arrays plus ``spacing_mm = (dy, dx)`` and returning a frozen dataclass; inputs
are never modified.  Coordinates follow ``docs/conventions.md``: images ``(y, x)`` with y down;
an angle θ places a point at ``centre + d (cos θ, −sin θ)`` in (x, y) mm (90° = 12 o'clock,
counter-clockwise on screen); a phantom rotation ρ adds ρ to every nominal angle.

Standards: AAPM Report 233 (TG-233, 2019) for the task transfer function (circular edge) and
the noise power spectrum; ACR CT QC Manual (2017) for ROI statistics and uniformity; ISO
12233:2017 (derivative correction) for the finite-difference LSF.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from iqa.errors import LocalizationError
from iqa.kernels.bars import bilinear
from iqa.kernels.esf import radial_esf
from iqa.kernels.nps import nps_2d, radial_average
from iqa.kernels.roi import circle_stats
from iqa.kernels.label import largest_filled
from iqa.phantoms._memo import view_memo

log = logging.getLogger(__name__)

__all__ = [
    "Body", "find_body", "circle_fit", "edge_circle", "position_px", "RoiStats", "roi_stats_mm",
    "pooled", "MTFResult", "mtf_circular_edge", "refine_disk_centre", "NPSResult", "nps_from_rois", "nps_grid_px",
    "Linearity", "linearity", "isotropic_pixel_mm", "contiguous_slices",
]


# --------------------------------------------------------------------------- geometry


def isotropic_pixel_mm(spacing_mm, *, where: str = "") -> float:
    """The pixel size (mm) of a square-pixel image; radial methods need dy ≈ dx.

    Raises
    ------
    LocalizationError
        When the pixels are not square within 1 %.
    """
    dy, dx = float(spacing_mm[0]), float(spacing_mm[1])
    if abs(dy - dx) > 0.01 * max(dy, dx):
        raise LocalizationError(f"{where}: non-square pixels ({dy:.3f} x {dx:.3f} mm) are not supported "
                                f"by the radial CT measurements; reconstruct with square pixels")
    return 0.5 * (dy + dx)


def position_px(centre_yx_px, spacing_mm, angle_deg, distance_mm, rotation_deg: float = 0.0):
    """Pixel position (y, x) of points at ``distance_mm`` and ``angle_deg`` from a centre.

    Convention (docs/conventions.md): ``(x, y)_mm = centre + d (cos θ, −sin θ)`` with θ the
    nominal angle plus the phantom rotation.  Accepts scalars or arrays for angle and distance;
    returns an array (..., 2).
    """
    th = np.radians(np.asarray(angle_deg, dtype=np.float64) + rotation_deg)
    d = np.asarray(distance_mm, dtype=np.float64)
    y = centre_yx_px[0] - d * np.sin(th) / spacing_mm[0]
    x = centre_yx_px[1] + d * np.cos(th) / spacing_mm[1]
    return np.stack(np.broadcast_arrays(y, x), axis=-1)


def circle_fit(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Algebraic least-squares circle (Kåsa 1976) through points; returns (cy, cx, r) in their units."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    ym, xm = y.mean(), x.mean()
    u, v = x - xm, y - ym
    a = np.stack([u, v, np.ones_like(u)], axis=1)
    b = u * u + v * v
    (p, q, c), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = xm + p / 2, ym + q / 2
    return float(cy), float(cx), float(math.sqrt(c + (p * p + q * q) / 4))


@dataclass(frozen=True, slots=True)
class Body:
    """The phantom body on one slice.

    Attributes
    ----------
    centre_yx_px : sub-pixel centre (row, column) in pixels.
    radius_mm : radius of the fitted outer edge (mm).
    area_mm2 : area of the filled body mask (mm²).
    roundness : SD of the edge-point radii / mean radius (0 for a perfect circle).
    """

    centre_yx_px: tuple[float, float]
    radius_mm: float
    area_mm2: float
    roundness: float


def _coarse_body(img: np.ndarray, dy: float, dx: float, threshold_hu: float, min_radius_mm: float) -> tuple:
    """First stage of :func:`find_body`, independent of the number of rays: the body mask on a
    ~1 mm grid, its centroid and equivalent radius, and the half level between body and air.

    Returns ``("ok", cy0_px, cx0_px, r0_mm, area_mm2, half_hu)`` or a failure ``("none",)``,
    ``("small", area_mm2)``, ``("border",)`` for the caller to report.
    """
    # coarse mask on a ~1 mm grid (cheap labelling); the edge itself is fitted at full resolution
    s = max(1, int(1.0 / max(dy, dx)))
    sub = img[::s, ::s]
    mask = np.isfinite(sub) & (sub > threshold_hu)
    if not mask.any():
        return ("none",)
    body = largest_filled(mask)
    area = float(body.sum()) * dy * dx * s * s
    if area < math.pi * min_radius_mm ** 2:
        return ("small", area)
    if body[0].any() or body[-1].any() or body[:, 0].any() or body[:, -1].any():
        return ("border",)
    # centroid from row and column counts (exact integer sums, as the mean of the indices)
    n_body = int(body.sum())
    cy0 = float(body.sum(axis=1) @ np.arange(body.shape[0])) / n_body * s
    cx0 = float(body.sum(axis=0) @ np.arange(body.shape[1])) / n_body * s
    r0_mm = math.sqrt(area / math.pi)
    step = max(1, int(0.5 * r0_mm / max(dy, dx) / 50))          # ~100 x 100 samples suffice
    yo, xo = np.ogrid[0:img.shape[0]:step, 0:img.shape[1]:step]
    sub_r2 = ((yo - cy0) * dy) ** 2 + ((xo - cx0) * dx) ** 2     # mm², compared with squared radii
    sub_i = img[::step, ::step]
    sub_ok = np.isfinite(sub_i)
    inner = (sub_r2 < (0.8 * r0_mm) ** 2) & sub_ok
    body_level = float(np.median(sub_i[inner])) if inner.any() else float(np.median(sub[body]))
    ring = (sub_r2 > (r0_mm + 3.0) ** 2) & (sub_r2 < (r0_mm + 8.0) ** 2) & sub_ok
    air_level = float(np.median(sub_i[ring])) if ring.any() else -1000.0
    half = 0.5 * (body_level + air_level)
    return ("ok", cy0, cx0, r0_mm, area, half)


def find_body(image: np.ndarray, *, spacing_mm, threshold_hu: float = -500.0, where: str = "",
              min_radius_mm: float = 30.0, n_rays: int = 180) -> Body:
    """Locate a round phantom body on one CT slice with sub-pixel precision.

    The body is the largest connected region above ``threshold_hu`` (holes filled).  Its edge is
    found on ``n_rays`` radial rays as the outermost crossing of the half level between the air
    outside and the body inside (bilinear sampling, linear interpolation), and a least-squares
    circle is fitted to those edge points.  A Gaussian blur moves a straight edge's half-level
    crossing by < 0.01 px for the radii of CT phantoms, so the centre is unbiased.

    Parameters
    ----------
    image : array (y, x), HU
    spacing_mm : (dy, dx) mm
    threshold_hu : body/air threshold (HU)

    Raises
    ------
    LocalizationError
        No body of at least ``min_radius_mm``, or the body touches the image border (phantom cut
        by the field of view).
    """

    img = np.asarray(image)
    dy, dx = float(spacing_mm[0]), float(spacing_mm[1])
    coarse = view_memo(img, ("_ct.coarse_body", dy, dx, float(threshold_hu), float(min_radius_mm)),
                        lambda: _coarse_body(img, dy, dx, threshold_hu, min_radius_mm))
    if coarse[0] == "none":
        raise LocalizationError(f"{where}: no object above {threshold_hu:g} HU; is this a phantom scan?")
    if coarse[0] == "small":
        raise LocalizationError(f"{where}: largest object is only {coarse[1] / 100:.1f} cm²; no phantom found")
    if coarse[0] == "border":
        raise LocalizationError(f"{where}: the phantom touches the image border (cut by the field of view); "
                                f"centre the phantom or reconstruct a larger field of view")
    _, cy0, cx0, r0_mm, area, half = coarse
    # outermost crossing on each ray, searched from r0 + 8 mm inward to r0 - 8 mm
    th = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    step_mm = 0.25 * min(dy, dx)
    radii = np.arange(r0_mm + 8.0, max(r0_mm - 8.0, 0.0), -step_mm)
    ys = cy0 - np.outer(np.sin(th), radii) / dy
    xs = cx0 + np.outer(np.cos(th), radii) / dx
    prof = bilinear(img, ys.ravel(), xs.ravel()).reshape(ys.shape)
    above = prof > half
    i = np.argmax(above, axis=1)                     # first sample above the half level, from outside
    k = np.flatnonzero(above.any(axis=1) & (i > 0))
    i = i[k]
    a, b = prof[k, i - 1], prof[k, i]
    fine = np.isfinite(a) & np.isfinite(b) & (b != a)
    k, i, a, b = k[fine], i[fine], a[fine], b[fine]
    if k.size < n_rays // 2:
        raise LocalizationError(f"{where}: phantom outline not found on enough rays ({k.size}/{n_rays})")
    r = radii[i - 1] + (half - a) / (b - a) * (radii[i] - radii[i - 1])
    py = cy0 - np.sin(th[k]) * r / dy
    px = cx0 + np.cos(th[k]) * r / dx
    cy, cx, _ = circle_fit(py * dy, px * dx)           # fit in mm so non-square pixels stay round
    rr = np.hypot(py * dy - cy, px * dx - cx)
    # one robust pass: drop edge points far off the circle (e.g. a notch or the couch)
    keep = np.abs(rr - np.median(rr)) < max(1.5, 4 * 1.4826 * np.median(np.abs(rr - np.median(rr))))
    if keep.sum() >= n_rays // 2 and not keep.all():
        cy, cx, _ = circle_fit(py[keep] * dy, px[keep] * dx)
        rr = np.hypot(py[keep] * dy - cy, px[keep] * dx - cx)
    radius = float(rr.mean())
    ny, nx = img.shape
    if cy - radius < 0 or cx - radius < 0 or cy + radius > (ny - 1) * dy or cx + radius > (nx - 1) * dx:
        raise LocalizationError(f"{where}: the phantom outline runs outside the image (cut by the field of view); "
                                f"centre the phantom or reconstruct a larger field of view")
    return Body((cy / dy, cx / dx), radius, area, float(rr.std() / rr.mean()))


def edge_circle(image: np.ndarray, *, spacing_mm, centre_yx_px, radius_mm: float, inside_hu: float,
                outside_hu: float, search_mm: float = 3.0, n_rays: int = 120) -> tuple[tuple[float, float], float]:
    """Fit the edge circle of a round insert of known nominal radius near a first-guess centre.

    On ``n_rays`` rays the crossing of ``(inside + outside)/2`` nearest the nominal radius (within
    ± ``search_mm``) is located by linear interpolation; a least-squares circle is fitted.

    Returns
    -------
    (centre_yx_px, radius_mm)
    """
    dy, dx = float(spacing_mm[0]), float(spacing_mm[1])
    half = 0.5 * (inside_hu + outside_hu)
    sign = 1.0 if inside_hu > outside_hu else -1.0
    th = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    step = 0.2 * min(dy, dx)
    radii = np.arange(max(radius_mm - search_mm, step), radius_mm + search_mm, step)
    cy0, cx0 = centre_yx_px
    ys = cy0 - np.outer(np.sin(th), radii) / dy
    xs = cx0 + np.outer(np.cos(th), radii) / dx
    prof = sign * (bilinear(image, ys.ravel(), xs.ravel()).reshape(ys.shape) - half)
    cross = (prof[:, :-1] > 0) & (prof[:, 1:] <= 0)
    # crossing nearest the nominal radius on each ray
    dist = np.where(cross, np.abs(radii[:-1] - radius_mm)[None, :], np.inf)
    i = np.argmin(dist, axis=1)
    found = np.isfinite(dist[np.arange(n_rays), i])
    if found.sum() < n_rays // 2:
        raise LocalizationError(f"insert edge not found near ({cy0:.1f}, {cx0:.1f}) px")
    k = np.flatnonzero(found)
    i = i[k]
    a, b = prof[k, i], prof[k, i + 1]
    r = radii[i] + a / (a - b) * (radii[i + 1] - radii[i])
    py = cy0 - np.sin(th[k]) * r / dy
    px = cx0 + np.cos(th[k]) * r / dx
    cy, cx, r = circle_fit(py * dy, px * dx)
    return (cy / dy, cx / dx), r


def contiguous_slices(good: np.ndarray) -> np.ndarray:
    """Indices of the longest run of True values (slices to pool); empty when none."""
    good = np.asarray(good, dtype=bool)
    best, start, best_range = 0, None, (0, 0)
    for i, g in enumerate(np.r_[good, False]):
        if g and start is None:
            start = i
        elif not g and start is not None:
            if i - start > best:
                best, best_range = i - start, (start, i)
            start = None
    return np.arange(*best_range)


# --------------------------------------------------------------------------- ROI statistics


@dataclass(frozen=True, slots=True)
class RoiStats:
    """Pooled statistics of circular ROIs over slices (docs/conventions.md "ROI statistics").

    ``mean_hu`` is the mean of the per-slice means, ``noise_hu`` the square root of the mean of
    the per-slice variances (ddof = 1); one entry per ROI.  ``n_pixels`` is per slice.
    """

    mean_hu: np.ndarray
    noise_hu: np.ndarray
    n_pixels: np.ndarray
    area_mm2: float


def pooled(mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool per-slice ROI results (z, k): mean of means and sqrt(mean of variances)."""
    return np.nanmean(mean, axis=0), np.sqrt(np.nanmean(sd ** 2, axis=0))


def roi_stats_mm(stack: np.ndarray, *, spacing_mm, centres_yx_px, radius_mm: float) -> RoiStats:
    """Circular-ROI mean and SD (ACR CT QC Manual 2017), radius in mm, pooled over the slices.

    Parameters
    ----------
    stack : array (z, y, x) or (y, x), HU
    spacing_mm : (dy, dx) mm; the radius is converted once with the mean pixel size
    centres_yx_px : array (k, 2) or (z, k, 2) of ROI centres in pixels (per slice when 3-D)
    radius_mm : ROI radius (mm)
    """
    arr = np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    r_px = radius_mm / (0.5 * (spacing_mm[0] + spacing_mm[1]))
    c = np.asarray(centres_yx_px, dtype=np.float64)
    if c.ndim == 3:
        means, sds, ns = [], [], []
        for z in range(arr.shape[0]):
            m, s, n = circle_stats(arr[z], c[z], r_px)
            means.append(m[0]), sds.append(s[0]), ns.append(n[0])
        mean, sd, n = np.array(means), np.array(sds), np.array(ns)
    else:
        mean, sd, n = circle_stats(arr, c.reshape(-1, 2), r_px)
    m, s = pooled(mean, sd)
    return RoiStats(m, s, n.min(axis=0), float(n.min()) * spacing_mm[0] * spacing_mm[1] if n.size else 0.0)


# --------------------------------------------------------------------------- MTF (TG-233)


@dataclass(frozen=True, slots=True)
class MTFResult:
    """Task transfer function from a circular edge (TG-233).

    Attributes
    ----------
    f_lpcm, mtf : the curve (lp/cm, normalised to 1 at f = 0), up to 2 × the Nyquist frequency.
    mtf50_lpcm, mtf10_lpcm : first frequencies where the curve falls to 0.5 and 0.1 (NaN if not).
    contrast_hu : edge contrast (inside − outside) from the ESF plateaus.
    centre_yx_px : the refined edge centre(s) used, (z, 2).
    r_esf_mm, esf : the binned radial ESF (for plots and checks).
    """

    f_lpcm: np.ndarray
    mtf: np.ndarray
    mtf50_lpcm: float
    mtf10_lpcm: float
    contrast_hu: float
    centre_yx_px: np.ndarray
    r_esf_mm: np.ndarray
    esf: np.ndarray


def refine_disk_centre(image: np.ndarray, centre_yx_px, radius_px: float, *, margin_px: float,
                       inside_hu: float, outside_hu: float, iterations: int = 3) -> tuple[float, float]:
    """Sub-pixel centre of a uniform disk: centroid of ``(I − outside)/(inside − outside)``.

    The weights are not clipped, so zero-mean noise adds no bias; a blur symmetric about the edge
    keeps the centroid.  The window (disk of ``radius + margin``) is re-centred each iteration.
    """
    cy, cx = float(centre_yx_px[0]), float(centre_yx_px[1])
    ny, nx = image.shape
    rw = radius_px + margin_px
    for _ in range(iterations):
        y0, y1 = max(int(math.floor(cy - rw)), 0), min(int(math.ceil(cy + rw)) + 1, ny)
        x0, x1 = max(int(math.floor(cx - rw)), 0), min(int(math.ceil(cx + rw)) + 1, nx)
        if y1 - y0 < 3 or x1 - x0 < 3:
            break
        sub = np.asarray(image[y0:y1, x0:x1], dtype=np.float64)
        yy, xx = np.ogrid[y0:y1, x0:x1]          # broadcast: same values as mgrid, no index images
        win = ((yy - cy) ** 2 + (xx - cx) ** 2 <= rw * rw) & np.isfinite(sub)
        w = (sub - outside_hu) / (inside_hu - outside_hu)
        w = np.where(win, w, 0.0)
        s = w.sum()
        if not s > 0:
            break
        cy, cx = float((w * yy).sum() / s), float((w * xx).sum() / s)
    return cy, cx


def _first_crossing(f: np.ndarray, m: np.ndarray, level: float) -> float:
    below = np.flatnonzero(m < level)
    if below.size == 0 or below[0] == 0:
        return float("nan")
    i = below[0]
    return float(f[i - 1] + (m[i - 1] - level) / (m[i - 1] - m[i]) * (f[i] - f[i - 1]))


def mtf_circular_edge(stack: np.ndarray, *, spacing_mm, centre_yx_px, radius_mm: float,
                      window_mm: float | None = None, bin_px: float = 0.1, refine: bool = True,
                      taper: float = 0.5,
                      inside_mm: float | None = None, where: str = "") -> MTFResult:
    """TG-233 task transfer function from a circular edge (insert or phantom border).

    1. the edge centre is refined per slice (disk centroid, :func:`refine_disk_centre`, for
       inserts; the caller passes fitted body centres for the phantom border with ``refine=False``);
    2. the radial ESF is binned at ``bin_px`` (0.1 px) over ``radius ± window`` pooling all slices,
       each bin placed at the mean radius of its pixels and resampled onto the bin grid;
    3. LSF = central difference of the ESF;
    4. a Hann-tapered window spanning ``radius ± window`` (flat over the inner ``1 − taper``) is
       applied, the LSF is zero-padded and Fourier transformed, |FT| is normalised at f = 0;
    5. the transfer of the two sampling steps of this method is divided out: the 0.1-px bin
       average with linear resampling from the bins' mean radii onto the bin grid (sinc(f·b))
       and the central difference (sinc(2 f h), ISO 12233:2017 derivative correction), both
       < 2 % at the frequencies of interest;
    6. mtf50/mtf10 are the first crossings of 0.5/0.1 (linear interpolation).

    Parameters
    ----------
    stack : (z, y, x) or (y, x) HU
    spacing_mm : (dy, dx), square pixels required
    centre_yx_px : (2,) or (z, 2) first-guess edge centre in pixels
    radius_mm : nominal edge radius (mm)
    window_mm : half-width of the ESF window (mm); default min(0.8 R, 10 mm) inside and the same
        outside.
    inside_mm : how far inside the edge the window may reach (default 0.8 R).
    """
    arr = np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    nz = arr.shape[0]
    px = isotropic_pixel_mm(spacing_mm, where=where)
    r_px = radius_mm / px
    w_mm = window_mm if window_mm is not None else min(0.8 * radius_mm, 10.0)
    w_in_px = min(w_mm, inside_mm if inside_mm is not None else 0.8 * radius_mm) / px
    w_out_px = w_mm / px
    c = np.broadcast_to(np.asarray(centre_yx_px, dtype=np.float64), (nz, 2)).copy()
    # plateau levels from the first-guess geometry
    if refine:
        for z in range(nz):
            inner = circle_stats(arr[z], c[z:z + 1], max(r_px - w_in_px, 0.5 * r_px))[0][0, 0]
            ring_r = r_px + w_out_px
            angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            ring = np.stack([c[z, 0] + ring_r * np.sin(angles), c[z, 1] + ring_r * np.cos(angles)], 1)
            outer = np.nanmedian(circle_stats(arr[z], ring, max(1.0, 0.3 * w_out_px))[0][0])
            if np.isfinite(inner) and np.isfinite(outer) and abs(inner - outer) > 1e-6:
                c[z] = refine_disk_centre(arr[z], c[z], r_px, margin_px=0.5 * w_out_px,
                                          inside_hu=inner, outside_hu=outer)
    r_lo = max(r_px - w_in_px, 0.0)
    r_hi = r_px + w_out_px
    r_mean, esf, n = radial_esf(arr, c[:, 0], c[:, 1], r_lo, r_hi, bin_px)
    good = n > 0
    if good.sum() < 0.5 * good.size:
        raise LocalizationError(f"{where}: too few pixels around the edge at radius {radius_mm:.1f} mm for the MTF")
    # each bin's mean sits at the mean radius of its pixels; resample onto the uniform bin grid
    r = r_lo + (np.arange(esf.size) + 0.5) * bin_px
    esf = np.interp(r, r_mean[good], esf[good])
    k = max(3, int(round(0.15 * esf.size)))
    contrast = float(np.mean(esf[:k]) - np.mean(esf[-k:]))
    if not abs(contrast) > 0:
        raise LocalizationError(f"{where}: no edge contrast at radius {radius_mm:.1f} mm")
    lsf = np.gradient(esf, bin_px)                  # per px
    # Hann-tapered window over the ESF span, centred on the nominal edge: flat over the inner
    # ``1 - taper`` of each side so that it does not narrow the LSF (a full Hann window of
    # half-width W shrinks a Gaussian LSF's variance by ~π²σ²/(2W²), 7 % for W = 6σ)
    t = np.abs(r - r_px) / np.where(r < r_px, r_px - r_lo, r_hi - r_px)
    u = np.clip((t - (1 - taper)) / taper, 0.0, 1.0)
    win = np.where(t < 1, 0.5 * (1 + np.cos(np.pi * u)), 0.0)
    lsf_w = lsf * win
    n_fft = max(8192, 1 << int(math.ceil(math.log2(lsf_w.size * 4))))
    spec = np.abs(np.fft.rfft(lsf_w, n=n_fft))
    f_cpp = np.fft.rfftfreq(n_fft, d=bin_px)          # cycles per pixel
    mtf = spec / spec[0]
    corr = np.sinc(f_cpp * bin_px) * np.sinc(2 * f_cpp * bin_px)
    mtf = mtf / corr
    f_lpcm = f_cpp / px * 10.0
    keep = f_cpp <= 1.0                               # up to 2 x Nyquist (oversampled ESF)
    f_lpcm, mtf = f_lpcm[keep], mtf[keep]
    return MTFResult(f_lpcm, mtf, _first_crossing(f_lpcm, mtf, 0.5), _first_crossing(f_lpcm, mtf, 0.1),
                     contrast, c, r * px, esf)


# --------------------------------------------------------------------------- NPS (TG-233)


@dataclass(frozen=True, slots=True)
class NPSResult:
    """Noise power spectrum from square ROIs (TG-233).

    Attributes
    ----------
    f_lpcm, nps : radial average (lp/cm; HU² mm²).
    nps_peak_lpcm : frequency of the radial maximum (parabolic sub-bin refinement).
    nps_mean_lpcm : ∫∫ f NPS / ∫∫ NPS over the 2-D plane.
    integral_hu2 : ∫∫ NPS dfx dfy (HU²); equals ``variance_hu2`` (Parseval).
    variance_hu2 : mean variance of the detrended ROIs (HU²).
    n_rois : number of ROIs stacked; roi_px : side (pixels).
    """

    f_lpcm: np.ndarray
    nps: np.ndarray
    nps_peak_lpcm: float
    nps_mean_lpcm: float
    integral_hu2: float
    variance_hu2: float
    n_rois: int
    roi_px: int


def nps_grid_px(centre_yx_px, spacing_mm, *, size_mm: float, within_mm: float, step_mm: float | None = None,
                avoid=()) -> np.ndarray:
    """Centres (pixels, (k, 2)) of square NPS ROIs on a grid (TG-233: overlapping ROIs allowed).

    The grid has pitch ``step_mm`` (default half the ROI side) about the centre; an ROI is kept
    when its whole square lies within ``within_mm`` of the centre and it stays clear (2 mm) of
    every ``(centre_yx_px, radius_mm)`` disk in ``avoid`` (rods, inserts).
    """
    step = step_mm if step_mm is not None else size_mm / 2
    half_diag = size_mm / math.sqrt(2.0)
    g = np.arange(-math.floor(within_mm / step), math.floor(within_mm / step) + 1) * step
    gy, gx = np.meshgrid(g, g, indexing="ij")
    keep = np.hypot(gy, gx) + half_diag <= within_mm
    cy = centre_yx_px[0] + gy[keep] / spacing_mm[0]
    cx = centre_yx_px[1] + gx[keep] / spacing_mm[1]
    ok = np.ones(cy.size, dtype=bool)
    for (ay, ax), ar in avoid:
        ok &= np.hypot((cy - ay) * spacing_mm[0], (cx - ax) * spacing_mm[1]) > half_diag + ar + 2.0
    return np.stack([cy[ok], cx[ok]], axis=1)


def nps_from_rois(stack: np.ndarray, *, spacing_mm, centres_yx_px, size_mm: float, where: str = "") -> NPSResult:
    """2-D NPS from square ROIs centred at ``centres_yx_px`` on every slice (TG-233 eq. 5.1).

    Each ROI (side ``round(size_mm / pixel)`` pixels) is detrended by a 2nd-order polynomial,
    the |DFT|² averaged over all ROIs and slices and scaled by Δx Δy / (Nx Ny).  The radial
    average uses bins of one DFT step 1/(N Δ).

    Raises
    ------
    LocalizationError
        When an ROI leaves the image or holds non-finite pixels.
    """
    arr = np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    dy, dx = float(spacing_mm[0]), float(spacing_mm[1])
    n = int(round(size_mm / (0.5 * (dy + dx))))
    n -= n % 2
    c = np.asarray(centres_yx_px, dtype=np.float64).reshape(-1, 2)
    nz = arr.shape[0]
    # ROI-major, then slices, in the image's own type: nps_2d converts a few ROIs at a time to
    # float64 (the same values), so no float64 copy of all of them is made
    stack_rois = np.empty((len(c) * nz, n, n), dtype=np.result_type(arr.dtype, np.float32))
    for k, (cy, cx) in enumerate(c):
        y0, x0 = int(round(cy - n / 2)), int(round(cx - n / 2))
        if y0 < 0 or x0 < 0 or y0 + n > arr.shape[1] or x0 + n > arr.shape[2]:
            raise LocalizationError(f"{where}: NPS ROI at ({cy:.0f}, {cx:.0f}) px leaves the image")
        stack_rois[k * nz:(k + 1) * nz] = arr[:, y0:y0 + n, x0:x0 + n]
    if not np.all(np.isfinite(stack_rois)):
        raise LocalizationError(f"{where}: NPS ROIs hold non-finite pixels")
    nps, fy, fx, variance = nps_2d(stack_rois, dy, dx, return_variance=True)
    dfy, dfx = 1.0 / (n * dy), 1.0 / (n * dx)
    integral = float(nps.sum() * dfy * dfx)
    f2d = np.hypot(fy[:, None], fx[None, :])
    mean_f = float((f2d * nps).sum() / nps.sum()) * 10.0 if nps.sum() > 0 else float("nan")
    f_c, rad, cnt = radial_average(nps, fy, fx, max(dfy, dfx))
    ok = cnt > 0
    f_c, rad = f_c[ok], rad[ok]
    i = int(np.argmax(rad[1:])) + 1 if rad.size > 2 else int(np.argmax(rad))
    peak = f_c[i]
    # sub-bin refinement: least-squares parabola through the 5 bins around the maximum
    lo, hi = max(i - 2, 1), min(i + 3, rad.size)
    if hi - lo >= 3:
        a2, a1, _ = np.polyfit(f_c[lo:hi] - f_c[i], rad[lo:hi], 2)
        if a2 < 0:
            peak = f_c[i] + float(np.clip(-a1 / (2 * a2), f_c[lo] - f_c[i], f_c[hi - 1] - f_c[i]))
    return NPSResult(f_c * 10.0, rad, float(peak) * 10.0, mean_f, integral, variance, len(stack_rois), n)


# --------------------------------------------------------------------------- linearity


@dataclass(frozen=True, slots=True)
class Linearity:
    """Least-squares line measured = slope · nominal + intercept, with R² (HU)."""

    slope: float
    intercept: float
    r2: float


def linearity(measured_hu, nominal_hu) -> Linearity:
    """CT-number linearity: ordinary least squares of measured on nominal HU, and R²."""
    y = np.asarray(measured_hu, dtype=np.float64)
    x = np.asarray(nominal_hu, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(x)
    if ok.sum() < 2:
        return Linearity(float("nan"), float("nan"), float("nan"))
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    pred = slope * x[ok] + intercept
    ss_res = float(((y[ok] - pred) ** 2).sum())
    ss_tot = float(((y[ok] - y[ok].mean()) ** 2).sum())
    return Linearity(float(slope), float(intercept), 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"))
