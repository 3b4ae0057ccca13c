"""MR flood-field (uniform) phantom: NEMA SNR, PIU, ghosting and diameters.

Works in image axes on any plane: a cylindrical bottle seen end-on (a disc, transverse) or side-on
(a rectangle, sagittal or coronal) is handled the same way, because every step is defined on the
segmented phantom rather than on an assumed shape.

Definitions (``docs/conventions.md``, NEMA MS 1-2008, NEMA MS 3-2008, ACR Large Phantom Test
Guidance 2018):

* phantom mask: pixels above half the *local* phantom level (a normalised convolution of the
  interior signal, σ = 10 mm), so shading does not move the edge;
* signal ROI: centred on the phantom centroid, 75 % of the phantom area: the phantom outline
  shrunk about the centroid by √0.75 (a disc of radius 0.866·R for a disc phantom);
* ``snr``: NEMA single-image method, mean of the signal ROI / (SD of the air background / 0.655);
  the background is the four corners of the field of view outside the phantom's row and column
  bands (no phase- or frequency-encoding ghost can reach them);
* ``snr_subtraction`` (``analyze_pair``): S / (SD(I1 − I2 in the signal ROI) / √2), S the mean of
  both acquisitions' signal-ROI means;
* ``piu_percent``: 100·(1 − (high − low)/(high + low)) over the 1 cm² disks wholly inside the
  signal ROI (:func:`iqa.kernels.uniformity.piu_search`);
* ``ghosting_percent``: four 10 cm² elliptical ROIs (axes 4:1, long axis parallel to the nearest
  FOV edge) midway between phantom edge and FOV edge on the axes through the phantom centre,
  100·|((top + bottom) − (left + right)) / (2·signal-ROI mean)|, each ghost ROI's signal
  corrected for the magnitude-noise floor (:func:`ghost_signal`); an ROI that would not fit
  between phantom and FOV edge is shrunk (4:1 kept) with a warning, never laid over the phantom;
* ``diameter_x_mm``, ``diameter_y_mm``: edge to edge through the centre along image x and y,
  each edge where the profile crosses half the local phantom level (linear interpolation).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from iqa.dicom import Series
from iqa.errors import InputError, LocalizationError
from iqa.kernels.gaussian import gaussian_filter, gaussian_weights
from iqa.kernels.label import largest_filled, mask_moments
from iqa.kernels.select import median, percentile
from iqa.kernels.flood import half_level_profile, shrunk_roi
from iqa.kernels.snr import (RAYLEIGH_SD_FACTOR, background_moments, difference_moments,
                             masked_moments, snr_single, snr_subtraction)
from iqa.kernels.uniformity import piu_search
from iqa.phantoms._memo import memo
from iqa.result import Measurement, PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "mr-flood"
MODALITY = "MR"


@dataclass(frozen=True, slots=True)
class FloodGeometry:
    """ROI sizes and analysis settings (mm, fractions); the standards they come from."""

    signal_area_fraction: float = 0.75     # NEMA MS 1 / MS 3: ROI >= 75 % of the phantom area
    piu_disk_area_mm2: float = 100.0       # ACR: 1 cm² low/high-signal ROIs
    ghost_area_mm2: float = 1000.0         # ACR: 10 cm² ghost ROIs
    ghost_axis_ratio: float = 4.0          # ACR: elliptical, about 4:1
    level_sigma_mm: float = 10.0           # smoothing of the local phantom level map
    background_margin_mm: float = 5.0      # gap between phantom bands and background corners
    min_background_px: int = 200           # fewer usable corner pixels -> no single-image snr
    min_corner_px: int = 20


@dataclass(frozen=True, slots=True)
class BackgroundPolicy:
    """When the air background supports the NEMA single-image method (thresholds are data).

    A single-channel magnitude background is Rayleigh distributed with mean/SD = 1.913; a
    sum-of-squares multi-coil background (non-central χ) has a larger ratio but an SD within 8 %
    of 0.655·σ, so it is usable with a warning.  Clipped, zero-filled or masked backgrounds have
    a ratio well below 1.9 or many zeros; parallel imaging makes the noise vary across the field.
    """

    max_zero_fraction: float = 0.5
    min_mean_sd_ratio: float = 1.65
    warn_high_ratio: float = 2.3
    max_corner_sd_ratio: float = 1.6
    min_background_sd: float = 0.1          # image units; below this the background is flat


GEOMETRY = FloodGeometry()
#: Highest identification score of a featureless object (see :func:`identify`).
MAX_SCORE = 0.9
POLICY = BackgroundPolicy()
RAYLEIGH_MEAN_SD = math.sqrt(math.pi / 2) / RAYLEIGH_SD_FACTOR


@dataclass(frozen=True, slots=True)
class FloodLocalization:
    """Where the phantom is in one image (pixel coordinates, (y, x))."""

    mask: np.ndarray            # bool, pixels above half the local level
    level: np.ndarray           # float64 local phantom level map
    centre_yx: tuple[float, float]
    area_px: float
    signal_roi: np.ndarray      # bool, 75 % of the phantom area, centred
    edges_x: tuple[float, float]   # (left, right) crossing, pixel coordinates
    edges_y: tuple[float, float]   # (top, bottom)
    bbox: tuple[int, int, int, int]  # (y0, y1, x0, x1) inclusive of the mask
    rough_centre_yx: tuple[float, float] = (math.nan, math.nan)   # centroid of the rough object mask


# --------------------------------------------------------------------------- localisation

def _cross_morphology(mask: np.ndarray, iterations: int, *, erode: bool) -> np.ndarray:
    """``ndi.binary_erosion`` / ``ndi.binary_dilation`` (``iterations`` times, 4-neighbour cross,
    outside the image False) by shifted ANDs / ORs of the whole array (~10x faster than scipy's
    per-pixel structuring loop)."""
    op = np.logical_and if erode else np.logical_or
    out = np.asarray(mask, dtype=bool)
    for _ in range(iterations):
        m = out
        out = m.copy()
        op(out[1:], m[:-1], out=out[1:])
        op(out[:-1], m[1:], out=out[:-1])
        op(out[:, 1:], m[:, :-1], out=out[:, 1:])
        op(out[:, :-1], m[:, 1:], out=out[:, :-1])
        if erode:
            out[0] = out[-1] = False
            out[:, 0] = out[:, -1] = False
    return out


def _rough_mask(image: np.ndarray) -> np.ndarray | None:
    """Largest bright connected object, holes filled; None when nothing stands out."""
    smooth = gaussian_filter(image, 1.0)
    hi, lo = percentile(smooth, [99.0, 5.0])      # np.percentile's values (kernels.select)
    if not hi > lo:
        return None
    thr = lo + 0.15 * (hi - lo)
    return largest_filled(smooth > thr)


def _level_map(image: np.ndarray, interior: np.ndarray, sigma_px: float) -> np.ndarray:
    """Local phantom level: normalised convolution of the interior signal (defined everywhere)."""
    num = gaussian_filter(np.where(interior, image, 0.0), sigma_px, mode="constant")
    den = gaussian_filter(interior.astype(np.float64), sigma_px, mode="constant")
    inside = den > 1e-3
    with np.errstate(invalid="ignore", divide="ignore"):
        level = num / den
    if not inside.all():      # far from the phantom: its median level (computed only when needed)
        level = np.where(inside, level, median(image[interior]))
    return level


def _profile_edges(image: np.ndarray, level: np.ndarray, centre_yx: tuple[float, float],
                   axis: int) -> tuple[float, float]:
    """Sub-pixel half-local-level crossings either side of the centre along image ``axis``.

    ``axis = 1`` walks along x (a row through the centre), ``axis = 0`` along y.  Three parallel
    lines (±1 px) are averaged.  Raises LocalizationError when an edge runs off the image.
    """
    cy, cx = centre_yx
    n = image.shape[1] if axis == 1 else image.shape[0]
    f = half_level_profile(image, level, centre_yx, axis)     # scipy's arithmetic, one pass
    if f is None:                                             # a line off the image: scipy's boundary rule
        s = np.arange(n, dtype=np.float64)
        offsets = np.repeat([-1.0, 0.0, 1.0], n)         # the three lines in one call per array
        along = np.tile(s, 3)
        if axis == 1:
            coords = np.vstack([cy + offsets, along])
        else:
            coords = np.vstack([along, cx + offsets])
        prof = np.mean(ndi.map_coordinates(image, coords, order=1, mode="nearest").reshape(3, n), axis=0)
        half = 0.5 * np.mean(ndi.map_coordinates(level, coords, order=1, mode="nearest").reshape(3, n), axis=0)
        f = prof - half
    c = cx if axis == 1 else cy
    i0 = int(round(c))
    if f[i0] <= 0:
        raise LocalizationError("the phantom centre is below half the phantom signal")
    out = []
    stop = ~(f > 0)                                   # the walk stops at f <= 0 (or NaN)
    for step in (-1, 1):
        ahead = stop[i0 + 1:] if step == 1 else stop[i0 - 1::-1] if i0 > 0 else stop[:0]
        k = int(np.argmax(ahead)) if ahead.size else 0
        if not ahead.size or not ahead[k]:
            raise LocalizationError("the phantom reaches the edge of the field of view")
        j = i0 + step * (k + 1)                       # first sample at or below half the level
        i = j - step
        # linear interpolation between the last inside (f > 0) and first outside (f <= 0) sample
        t = f[i] / (f[i] - f[j])
        out.append(i + step * t)
    return out[0], out[1]


def localize(image: np.ndarray, spacing_mm: tuple[float, float], *,
             geometry: FloodGeometry = GEOMETRY) -> FloodLocalization:
    """Segment the flood phantom and build its signal ROI.

    Parameters
    ----------
    image : 2-D array (y, x).
    spacing_mm : (dy, dx) in mm.

    Raises
    ------
    LocalizationError
        No phantom, or a phantom cut by the field of view.
    """
    image = np.asarray(image, dtype=np.float64)
    dy, dx = spacing_mm
    rough = _rough_mask(image)
    n_rough, sy, sx = mask_moments(rough)[:3] if rough is not None else (0, 0, 0)
    if rough is None or n_rough < 0.02 * image.size or n_rough == image.size or \
            median(image[rough]) < 5.0 * max(median(image[~rough]), 1e-12):
        raise LocalizationError("no phantom found (no object covering 2 % of the field of view and at "
                                "least 5 times brighter than its surroundings)")
    rough_centre = (sy / n_rough, sx / n_rough)      # = np.nonzero(rough)[k].mean(), exactly
    interior = _cross_morphology(rough, 2, erode=True)
    if interior.sum() < 50:
        interior = rough
    sigma_px = geometry.level_sigma_mm / math.sqrt(dy * dx)
    level = _level_map(image, interior, sigma_px)
    smooth = gaussian_filter(image, 0.5)
    above = smooth > 0.5 * level
    mask = largest_filled(above & _cross_morphology(rough, 3, erode=False))
    if mask is None:
        raise LocalizationError("no phantom found above half its own signal level")
    area, sy, sx, y0, y1, x0, x1 = mask_moments(mask)
    ny, nx = image.shape
    if y0 == 0 or x0 == 0 or y1 == ny - 1 or x1 == nx - 1:
        raise LocalizationError("the phantom touches the edge of the field of view; centre it or enlarge the FOV")
    cy, cx = sy / area, sx / area                    # the centroid, = np.nonzero(mask)[k].mean()
    # signal ROI: phantom outline shrunk about the centroid by sqrt(fraction), evaluated on the
    # sub-pixel signed function (smooth - level/2) so the ROI boundary is not pixel-quantised
    k = math.sqrt(geometry.signal_area_fraction)
    # bilinear (order 1, no prefilter) samples are positive only within one pixel of the mask,
    # so only the pixels whose source lies within the mask's box (+1 px) are sampled
    ya, yb = max(0, math.floor(cy + k * (y0 - 1 - cy))), min(ny, math.ceil(cy + k * (y1 + 1 - cy)) + 1)
    xa, xb = max(0, math.floor(cx + k * (x0 - 1 - cx))), min(nx, math.ceil(cx + k * (x1 + 1 - cx)) + 1)
    roi = shrunk_roi(smooth, level, mask, (cy, cx), k, (ya, yb, xa, xb))   # scipy's arithmetic, one pass
    if roi is None:                                      # a source near the border: scipy's cval
        signed = np.where(mask, smooth - 0.5 * level, np.minimum(smooth - 0.5 * level, -1e-9))
        gy, gx = np.mgrid[ya:yb, xa:xb].astype(np.float64)
        src_y, src_x = (cy + (gy - cy) / k).ravel(), (cx + (gx - cx) / k).ravel()
        vals = ndi.map_coordinates(signed, np.vstack([src_y, src_x]), order=1, mode="constant", cval=-1.0)
        roi = np.zeros((ny, nx), dtype=bool)
        roi[ya:yb, xa:xb] = (vals > 0).reshape(yb - ya, xb - xa)
    ex = _profile_edges(image, level, (cy, cx), axis=1)
    ey = _profile_edges(image, level, (cy, cx), axis=0)
    # sub-pixel area: count plus the partial boundary from the signed function is not needed here
    return FloodLocalization(mask=mask, level=level, centre_yx=(cy, cx), area_px=float(area),
                             signal_roi=roi, edges_x=ex, edges_y=ey, bbox=(y0, y1, x0, x1),
                             rough_centre_yx=rough_centre)


# --------------------------------------------------------------------------- measurements

@dataclass(frozen=True, slots=True)
class BackgroundAssessment:
    usable: bool
    sd: float
    mean: float
    n: int
    zero_fraction: float
    mean_sd_ratio: float
    corner_sd: tuple[float, ...]
    reason: str          # why unusable, or a caution when usable; "" when clean
    power: float = math.nan   # mean of M² over the corners: 2σ² per receive channel


def background_corners(shape: tuple[int, int], loc: FloodLocalization, spacing_mm: tuple[float, float], *,
                       geometry: FloodGeometry = GEOMETRY) -> list[np.ndarray]:
    """Masks of the four FOV corners outside the phantom's row and column bands (plus margin)."""
    ny, nx = shape
    dy, dx = spacing_mm
    my = int(math.ceil(geometry.background_margin_mm / dy))
    mx = int(math.ceil(geometry.background_margin_mm / dx))
    y0, y1, x0, x1 = loc.bbox
    rows = [(1, y0 - my), (y1 + my + 1, ny - 1)]
    cols = [(1, x0 - mx), (x1 + mx + 1, nx - 1)]
    out = []
    for ra, rb in rows:
        for ca, cb in cols:
            m = np.zeros(shape, dtype=bool)
            if rb > ra and cb > ca:
                m[ra:rb, ca:cb] = True
            out.append(m)
    return out


def assess_background(image: np.ndarray, corners: list[np.ndarray], *, geometry: FloodGeometry = GEOMETRY,
                      policy: BackgroundPolicy = POLICY) -> BackgroundAssessment:
    """Pooled background SD over the corners and whether it is fit for the NEMA single-image method."""
    stats = []
    for m in corners:
        if m.sum() >= geometry.min_corner_px:
            stats.append(background_moments(image, m, 0.0))
    n = sum(s[0] for s in stats)
    if n < geometry.min_background_px:
        return BackgroundAssessment(False, math.nan, math.nan, n, math.nan, math.nan, (),
                                    f"only {n} background pixels in the FOV corners (need "
                                    f"{geometry.min_background_px}); the phantom fills the field of view")
    dof = sum(s[0] - 1 for s in stats)
    pooled_var = sum((s[0] - 1) * s[2] ** 2 for s in stats) / dof
    sd = math.sqrt(pooled_var)
    mean = sum(s[0] * s[1] for s in stats) / n
    zeros = sum(s[3] for s in stats) / n
    corner_sd = tuple(float(s[2]) for s in stats)
    ratio = mean / sd if sd > 0 else math.inf
    power = sum(s[0] * s[1] ** 2 + (s[0] - 1) * s[2] ** 2 for s in stats) / n
    base = (sd, mean, n, zeros, ratio, corner_sd)
    if not sd > policy.min_background_sd or zeros > policy.max_zero_fraction:
        return BackgroundAssessment(False, *base, f"background is zero-filled or masked ({100 * zeros:.0f} % "
                                    f"of corner pixels <= 0, SD {sd:.3g})", power)
    if ratio < policy.min_mean_sd_ratio:
        return BackgroundAssessment(False, *base, f"background is not Rayleigh noise (mean/SD {ratio:.2f}, "
                                    f"Rayleigh {RAYLEIGH_MEAN_SD:.2f}; {100 * zeros:.0f} % zeros): suppressed, "
                                    f"clipped or filtered by the scanner, so its SD understates the image noise",
                                    power)
    if len(corner_sd) >= 2 and max(corner_sd) > policy.max_corner_sd_ratio * min(corner_sd):
        return BackgroundAssessment(False, *base, f"background noise varies across the field of view (corner SDs "
                                    f"{', '.join(f'{v:.3g}' for v in corner_sd)}), as with parallel imaging", power)
    note = ""
    if ratio > policy.warn_high_ratio:
        note = (f"background mean/SD {ratio:.2f} is above the Rayleigh {RAYLEIGH_MEAN_SD:.2f}: multi-channel "
                f"(non-central chi) noise, the 0.655 correction may misstate snr by up to 8 %")
    return BackgroundAssessment(True, *base, note, power)


def ellipse_mask(shape: tuple[int, int], centre_yx: tuple[float, float], semi_y_px: float,
                 semi_x_px: float) -> np.ndarray:
    """Pixels whose centres lie inside an axis-aligned ellipse (pixel coordinates)."""
    ny, nx = shape
    cy, cx = centre_yx
    if not all(math.isfinite(v) for v in (cy, cx, semi_y_px, semi_x_px)):
        gy, gx = np.ogrid[0:ny, 0:nx]
        return ((gy - cy) / semi_y_px) ** 2 + ((gx - cx) / semi_x_px) ** 2 <= 1.0
    out = np.zeros(shape, dtype=bool)
    # outside the bounding box one term alone exceeds 1: evaluate the box only (same expression)
    ya, yb = max(0, math.floor(cy - abs(semi_y_px)) - 1), min(ny, math.ceil(cy + abs(semi_y_px)) + 2)
    xa, xb = max(0, math.floor(cx - abs(semi_x_px)) - 1), min(nx, math.ceil(cx + abs(semi_x_px)) + 2)
    if ya < yb and xa < xb:
        gy, gx = np.ogrid[ya:yb, xa:xb]
        out[ya:yb, xa:xb] = ((gy - cy) / semi_y_px) ** 2 + ((gx - cx) / semi_x_px) ** 2 <= 1.0
    return out


def ghost_rois(shape: tuple[int, int], loc: FloodLocalization, spacing_mm: tuple[float, float], *,
               geometry: FloodGeometry = GEOMETRY) -> tuple[dict[str, np.ndarray], list[str]]:
    """The four ghosting ROIs (ACR 2018): name -> mask, and warnings for shrunken ROIs."""
    ny, nx = shape
    dy, dx = spacing_mm
    b_mm = math.sqrt(geometry.ghost_area_mm2 / (math.pi * geometry.ghost_axis_ratio))
    a_mm = geometry.ghost_axis_ratio * b_mm
    cy, cx = loc.centre_yx
    (xl, xr), (yt, yb) = loc.edges_x, loc.edges_y
    # FOV edges are the outer pixel boundaries at -0.5 and n - 0.5
    spec = {
        "top": ((yt - 0.5) / 2, cx, yt + 0.5, dy, dx),
        "bottom": ((yb + ny - 0.5) / 2, cx, ny - 0.5 - yb, dy, dx),
        "left": (cy, (xl - 0.5) / 2, xl + 0.5, dx, dy),
        "right": (cy, (xr + nx - 0.5) / 2, nx - 0.5 - xr, dx, dy),
    }
    rois, warnings = {}, []
    for name, (y0, x0, gap_px, short_mm, long_mm) in spec.items():
        short_px = b_mm / short_mm
        long_px = a_mm / long_mm
        room = gap_px / 2 - 1.0          # keep a pixel clear of the phantom edge and the FOV edge
        if short_px > room:
            scale = room / short_px
            if room < 1.5:
                raise LocalizationError(f"no room for the {name} ghosting ROI between phantom and FOV edge "
                                        f"({gap_px * short_mm:.1f} mm)")
            short_px *= scale
            long_px *= scale
            if scale < 0.99:
                    warnings.append(f"ghosting: {name} ROI shrunk to {100 * scale * scale:.0f} % of 10 cm² "
                                f"(only {gap_px * short_mm:.1f} mm between phantom and FOV edge)")
        if name in ("top", "bottom"):
            m = ellipse_mask(shape, (y0, x0), short_px, long_px)
        else:
            m = ellipse_mask(shape, (y0, x0), long_px, short_px)
        rois[name] = m
    return rois, warnings


def ghost_signal(image: np.ndarray, roi: np.ndarray, background: BackgroundAssessment) -> float:
    """Ghost signal in a background ROI, corrected for the magnitude-noise floor.

    A magnitude pixel of underlying signal A has ``E[M²] = A² + P`` with ``P = E[M²]`` of pure
    noise (2σ² for one channel, 2nσ² for an n-channel sum of squares; Henkelman 1985, Gudbjartsson
    & Patz 1995).  So ``A ≈ sqrt(max(⟨M²⟩_roi − ⟨M²⟩_background, 0))``; the plain mean would
    understate a ghost of the order of the noise several-fold (the Rician floor compresses it)
    while the noise floor itself cancels in the ACR formula.  Without a usable background the
    plain ROI mean is returned.
    """
    n, mean, sd = masked_moments(image, roi)
    if n < 2:
        return math.nan
    if not background.usable or not math.isfinite(background.power):
        return mean
    power = mean * mean + sd * sd * (n - 1) / n
    return math.sqrt(max(power - background.power, 0.0))


def percent_integral_uniformity(image: np.ndarray, roi: np.ndarray, spacing_mm: tuple[float, float], *,
                                geometry: FloodGeometry = GEOMETRY) -> tuple[float, dict]:
    """PIU (%) = 100·(1 − (high − low)/(high + low)), 1 cm² disks inside ``roi`` (ACR 2018, NEMA MS 3)."""
    dy, dx = spacing_mm
    radius_px = math.sqrt(geometry.piu_disk_area_mm2 / math.pi) / math.sqrt(dy * dx)
    try:
        low, low_yx, high, high_yx = piu_search(image, roi, radius_px)
    except ValueError as exc:
        raise LocalizationError(f"PIU: {exc}") from None
    piu = 100.0 * (1.0 - (high - low) / (high + low)) if high + low > 0 else math.nan
    return piu, {"low": low, "low_yx": list(low_yx), "high": high, "high_yx": list(high_yx)}


# --------------------------------------------------------------------------- pipeline

def _slice_index(series: Series) -> int:
    return series.volume.shape[0] // 2


#: A field of view narrower than this (mm) cannot hold a flood phantom: a wrong PixelSpacing, or a
#: strip of an image.  It also bounds the mm-sized smoothing kernels to a few image widths (a
#: 1e-4 mm spacing made the 10 mm level map a 10^5-pixel Gaussian: a minute per slice).
MIN_FOV_MM = 20.0


def _spacing(series: Series) -> tuple[float, float]:
    dy, dx = series.pixel_spacing_mm
    if not (dy > 0 and dx > 0):
        raise InputError(f"{series.where}: pixel spacing {dy} x {dx} mm is unusable")
    _, ny, nx = series.volume.shape
    if min(ny * dy, nx * dx) < MIN_FOV_MM:
        raise InputError(f"{series.where}: field of view {nx * dx:.3g} x {ny * dy:.3g} mm (pixel spacing {dy:.3g} x "
                         f"{dx:.3g} mm) is too small for a flood phantom; check PixelSpacing")
    return float(dy), float(dx)


def _localized(series: Series, z: int, spacing: tuple[float, float], geometry: FloodGeometry = GEOMETRY
               ) -> tuple[np.ndarray, FloodLocalization]:
    """Slice ``z`` of ``series`` as float64 and its :func:`localize` result, computed once per slice
    (``identify``, ``analyze`` and ``analyze_pair`` localise the same slices: :mod:`._memo`)."""
    image = np.asarray(series.volume[z], dtype=np.float64)
    loc = memo(series.volume, ("flood.localize", z, spacing, geometry),
               lambda: localize(image, spacing, geometry=geometry), errors=(LocalizationError,))
    return image, loc


def structure_score(image: np.ndarray, loc: FloodLocalization, spacing_mm: tuple[float, float]) -> float:
    """Fraction of the signal ROI holding sharp structure (rods, wedges, grids): 0 for a flood.

    Structure is where a lightly smoothed image (σ 1 mm) departs from the local phantom level by
    more than 20 % of it, well above the noise of any usable flood image.
    """
    dy, dx = spacing_mm
    sigma = (1.0 / dy, 1.0 / dx)
    roi = loc.signal_roi
    n, _, _, y0, y1, x0, x1 = mask_moments(roi)
    ny, nx = image.shape
    if n:   # only the ROI's box is needed: smooth a crop padded by the kernel radius (same sums)
        ry, rx = (len(gaussian_weights(s)) - 1 if s > 1e-15 else 0 for s in sigma)
        ya, yb, xa, xb = max(0, y0 - ry), min(ny, y1 + 1 + ry), max(0, x0 - rx), min(nx, x1 + 1 + rx)
        box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        fine = gaussian_filter(image[ya:yb, xa:xb], sigma)[y0 - ya:y1 + 1 - ya, x0 - xa:x1 + 1 - xa]
        level, roi = loc.level[box], roi[box]
    else:
        fine, level = gaussian_filter(image, sigma), loc.level
    rel = np.abs(fine - level) / np.maximum(level, 1e-12)
    return float(np.mean(rel[roi] > 0.2))


def identify(series: Series) -> float:
    """Confidence (0..1) that the series shows a uniform flood phantom.

    Every slice must hold one large object with no internal structure in its central 75 %: the
    ACR phantom, the MagNET slice-width and geometry objects and grid phantoms all fail that.
    A featureless object is the weakest evidence of all, so the score is capped at
    ``MAX_SCORE`` (0.9): a pipeline that recognises a specific phantom by its dimensions (a
    structureless synthetic ACR localizer, say) should win a tie.
    """
    if series.modality != "MR":
        return 0.0
    try:
        spacing = _spacing(series)
    except InputError:
        return 0.0
    best = 1.0
    n = series.volume.shape[0]
    for z in sorted(range(n), key=lambda k: abs(k - n // 2)):   # central slice first
        try:
            image, loc = _localized(series, z, spacing)
        except LocalizationError:
            return 0.0
        frac = structure_score(image, loc, spacing)
        size_ok = min(1.0, loc.area_px / image.size / 0.1)      # under 10 % of the FOV: a small object
        best = min(best, size_ok * max(0.0, 1.0 - frac / 0.005))
        if best == 0.0:
            break
    return float(MAX_SCORE * best)


def analyze(series: Series, *, geometry: FloodGeometry = GEOMETRY, policy: BackgroundPolicy = POLICY
            ) -> PhantomAnalysis:
    """Measure snr, piu_percent, ghosting_percent and both diameters on the central slice."""
    spacing = _spacing(series)
    z = _slice_index(series)
    try:
        image, loc = _localized(series, z, spacing, geometry)
    except LocalizationError as exc:
        raise LocalizationError(f"{series.where}: slice {z}: {exc}") from None
    out = PhantomAnalysis(phantom=NAME)
    dy, dx = spacing
    out.add("diameter_x_mm", (loc.edges_x[1] - loc.edges_x[0]) * dx, "mm")
    out.add("diameter_y_mm", (loc.edges_y[1] - loc.edges_y[0]) * dy, "mm")

    n_sig, signal, sd_sig = masked_moments(image, loc.signal_roi)
    bg = assess_background(image, background_corners(image.shape, loc, spacing, geometry=geometry),
                           geometry=geometry, policy=policy)
    if bg.usable:
        out.add("snr", snr_single(signal, bg.sd), "")
        if bg.reason:
            out.warnings.append(f"snr: {bg.reason}")
    else:
        out.warnings.append(f"snr: not measured, {bg.reason}; use two acquisitions (snr_subtraction)")

    try:
        piu, piu_detail = percent_integral_uniformity(image, loc.signal_roi, spacing, geometry=geometry)
        out.add("piu_percent", piu, "%")
    except LocalizationError as exc:
        piu_detail = {}
        out.warnings.append(f"piu_percent: not measured, {exc}")

    ghost_detail: dict[str, float] = {}
    try:
        rois, notes = ghost_rois(image.shape, loc, spacing, geometry=geometry)
        out.warnings.extend(notes)
        means = {k: ghost_signal(image, m & ~loc.mask, bg) for k, m in rois.items()}
        ghost = 100.0 * abs(((means["top"] + means["bottom"]) - (means["left"] + means["right"])) / (2.0 * signal))
        out.add("ghosting_percent", ghost, "%")
        ghost_detail = means
        if not bg.usable:
            out.warnings.append("ghosting_percent: background unusable, ghost ROI means not corrected for the "
                                "noise floor (magnitude noise compresses faint ghosts)")
    except LocalizationError as exc:
        out.warnings.append(f"ghosting_percent: not measured, {exc}")

    cy, cx = loc.centre_yx
    out.details.update({
        "slice_index": z,
        "centre_px": [cy, cx],
        "centre_mm": [cy * dy, cx * dx],
        "phantom_area_mm2": loc.area_px * dy * dx,
        "signal_roi_area_mm2": float(loc.signal_roi.sum()) * dy * dx,
        "signal_mean": signal,
        "signal_sd": sd_sig,
        "signal_pixels": n_sig,
        "background": {"sd": bg.sd, "mean": bg.mean, "pixels": bg.n, "zero_fraction": bg.zero_fraction,
                       "mean_sd_ratio": bg.mean_sd_ratio, "corner_sd": list(bg.corner_sd),
                       "usable": bg.usable,
                       "snr_if_rayleigh": snr_single(signal, bg.sd) if bg.sd > 0 else None},
        "piu": piu_detail,
        "ghost_means": ghost_detail,
    })
    return out


def analyze_pair(a: Series, b: Series, *, geometry: FloodGeometry = GEOMETRY) -> dict[str, Measurement]:
    """NEMA MS 1-2008 two-acquisition SNR of two repeat acquisitions of the same slice(s).

    ``snr_subtraction = S / (SD(I1 − I2) / √2)`` within the signal ROI of the central slice (placed
    on the mean of the two images), with S the mean of the two images' ROI means, so the result
    does not depend on the order.

    Raises
    ------
    InputError
        The two series differ in matrix or pixel spacing.
    LocalizationError
        The phantom moved between the acquisitions (centres more than 2 mm apart).
    """
    if a.volume.shape != b.volume.shape:
        raise InputError(f"{b.where}: matrix {b.volume.shape} differs from {a.volume.shape} of series {a.uid}")
    sa, sb = _spacing(a), _spacing(b)
    if not np.allclose(sa, sb, rtol=1e-3):
        raise InputError(f"{b.where}: pixel spacing {sb} differs from {sa} of series {a.uid}")
    z = _slice_index(a)
    centres, images = [], []
    for s, sp in ((a, sa), (b, sb)):
        try:       # analyze() has localised the slice already: its rough mask's centroid
            img, loc = _localized(s, z, sp, geometry)
            cy, cx = loc.rough_centre_yx
        except LocalizationError:
            img = np.asarray(s.volume[z], dtype=np.float64)
            rough = _rough_mask(img)
            if rough is None:
                raise LocalizationError(f"{s.where}: slice {z}: no phantom found") from None
            n_rough, sy, sx = mask_moments(rough)[:3]
            cy, cx = sy / n_rough, sx / n_rough
        images.append(img)
        centres.append((cy * sa[0], cx * sa[1]))
    ia, ib = images
    shift_mm = math.hypot(centres[0][0] - centres[1][0], centres[0][1] - centres[1][1])
    if shift_mm > 2.0:
        raise LocalizationError(f"{b.where}: phantom moved {shift_mm:.1f} mm between the two acquisitions; "
                                f"subtraction SNR needs the same position")
    try:   # the ROI is placed on the mean image, so the result does not depend on the order
        loc = localize(0.5 * (ia + ib), sa, geometry=geometry)
    except LocalizationError as exc:
        raise LocalizationError(f"{a.where}: slice {z}: {exc}") from None
    _, mean_a, _ = masked_moments(ia, loc.signal_roi)
    _, mean_b, _ = masked_moments(ib, loc.signal_roi)
    _, _, sd_diff = difference_moments(ia, ib, loc.signal_roi)
    value = snr_subtraction(0.5 * (mean_a + mean_b), sd_diff)
    if not math.isfinite(value):
        raise InputError(f"{b.where}: the two acquisitions are identical in the signal ROI; "
                         f"they are copies, not repeat acquisitions")
    return {"snr_subtraction": Measurement(value, "")}
