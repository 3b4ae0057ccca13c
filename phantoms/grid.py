"""MR grid (geometric distortion) phantom: ``distortion_max_mm`` from detected grid points.

Pipeline (AAPM Report 100 (2010) "spatial linearity"; ``docs/conventions.md``, ``mr-grid``):

1. find the grid features (rods or holes, bright or dark) by zero-mean normalised
   cross-correlation with a blurred disc of the nominal rod diameter
   (:func:`iqa.kernels.grid.match_template`), keep local maxima that are also strong in
   contrast, and refine each to sub-pixel by its contrast-weighted centre of mass
   (:func:`iqa.kernels.grid.refine_centroids`); a cheap bound on the correlation first turns away
   images that cannot hold enough peaks (floods) and limits the exact match to the pixels where
   a peak is possible (:func:`_score`, same peaks as the full match);
2. assign every point to a node of the nominal square lattice (pitch from the phantom geometry,
   in-plane rotation from the nearest-neighbour directions), rejecting points that sit between
   nodes;
3. fit the nominal lattice to the points by least squares, rotation and translation only
   (Kabsch/Umeyama without scale: a scaling error *is* distortion), and report the largest and
   mean distance between each point and its fitted nominal position.

Everything is measured in image axes (x = columns, y = rows) in mm, so any plane orientation works.
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from iqa.dicom import Series
from iqa.errors import InputError, LocalizationError
from iqa.kernels.grid import local_peaks, match_template, match_template_at, ncc_rank_k, refine_centroids
from iqa.phantoms._memo import memo
from iqa.result import PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "mr-grid"
MODALITY = "MR"


@dataclass(frozen=True, slots=True)
class GridGeometry:
    """Nominal grid (mm) and detection settings (fractions of the nominal sizes)."""

    pitch_mm: float = 20.0             # centre-to-centre spacing of the grid features
    rod_diameter_mm: float = 4.0       # feature diameter, sets the matched template
    min_ncc: float = 0.5               # template correlation to count as a candidate
    min_contrast_fraction: float = 0.4  # of the median candidate contrast
    max_offset_fraction: float = 0.3   # of the pitch: farther from a node is not a grid point
    min_points: int = 9


GEOMETRY = GridGeometry()


@dataclass(frozen=True, slots=True)
class GridPoints:
    """Detected grid points (pixel coordinates) with their lattice indices."""

    yx_px: np.ndarray           # (n, 2) sub-pixel (y, x)
    ij: np.ndarray              # (n, 2) integer lattice indices (along rotated x, y)
    rejected: int               # candidates not on a lattice node
    polarity: int               # +1 bright features, -1 dark features
    rotation_deg: float         # lattice rotation estimate (mod 90 degrees)


def _template(radius_px: tuple[float, float]) -> np.ndarray:
    """Disc of the nominal feature radius (per axis, pixels), lightly blurred, with a background ring."""
    return _template_cached(tuple(float(r) for r in radius_px)).copy()


@functools.lru_cache(maxsize=16)
def _template_cached(radius_px: tuple[float, float]) -> np.ndarray:
    # every series of one pixel size asks for the same template; building it (ndi.gaussian_filter
    # of a small disc) cost ~0.15 ms of the ~2 ms in which a flood is turned away
    ry, rx = radius_px
    hy, hx = int(math.ceil(2.0 * ry)) + 1, int(math.ceil(2.0 * rx)) + 1
    gy, gx = np.mgrid[-hy:hy + 1, -hx:hx + 1].astype(np.float64)
    t = ((gy / ry) ** 2 + (gx / rx) ** 2 <= 1.0).astype(np.float64)
    return ndi.gaussian_filter(t, 0.6)


def _contrast_image(image: np.ndarray, ys: np.ndarray, xs: np.ndarray, radius: float, polarity: int) -> np.ndarray:
    """Feature contrast around each seed: ``polarity·(image − local background)``, clipped at 0.

    The local background is the median of a ring 1–3 px outside the centroid disk of each seed;
    pixels farther than the ring from every seed get zero weight.
    """
    ny, nx = image.shape
    outer = radius + 3.0
    h = int(math.ceil(outer))
    gy, gx = np.mgrid[-h:h + 1, -h:h + 1]
    rr = np.hypot(gy, gx)
    ring = (rr > radius) & (rr <= outer)
    disk = rr <= radius + 1.0
    out = np.zeros_like(image)
    ys, xs = np.asarray(ys, dtype=np.int64), np.asarray(xs, dtype=np.int64)
    inside = (ys - h >= 0) & (xs - h >= 0) & (ys + h + 1 <= ny) & (xs + h + 1 <= nx)
    ys, xs = ys[inside], xs[inside]
    if ys.size == 0:
        return out
    ry, rx = np.nonzero(ring)             # all ring medians in one call (row-major, as win[ring])
    bgs = np.median(image[ys[:, None] + (ry - h), xs[:, None] + (rx - h)], axis=1)
    for y, x, bg in zip(ys, xs, bgs):     # in seed order: a later seed's disk overwrites
        y0, y1, x0, x1 = y - h, y + h + 1, x - h, x + h + 1
        win = image[y0:y1, x0:x1]
        out[y0:y1, x0:x1] = np.where(disk, np.maximum(polarity * (win - float(bg)), 0.0), out[y0:y1, x0:x1])
    return out


def _peak_separation(spacing_mm: tuple[float, float], g: GridGeometry) -> int:
    """Radius (px) within which :func:`iqa.kernels.grid.local_peaks` keeps one peak: 0.4 pitch."""
    return max(1, int(0.4 * g.pitch_mm / max(spacing_mm)))


def _candidates(image: np.ndarray, spacing_mm: tuple[float, float], polarity: int, g: GridGeometry,
                score: np.ndarray):
    """``score`` is the NCC of ``image`` with the template; that of ``-image`` is exactly ``-score``."""
    dy, dx = spacing_mm
    score = score if polarity > 0 else -score
    sep = _peak_separation(spacing_mm, g)
    ys, xs = local_peaks(score, sep, g.min_ncc)
    if ys.size == 0:
        return np.empty((0, 2)), np.empty(0)
    radius = g.rod_diameter_mm / 2 / min(dy, dx) + 1.0
    weights = _contrast_image(image, ys, xs, radius, polarity)
    yx = refine_centroids(weights, ys, xs, radius)
    for _ in range(2):          # re-centre the disk on the estimate
        ok = np.isfinite(yx).all(axis=1)
        yx[ok] = refine_centroids(weights, np.rint(yx[ok, 0]).astype(np.int64),
                                  np.rint(yx[ok, 1]).astype(np.int64), radius)
    contrast = np.array([weights[y, x] for y, x in zip(ys, xs)])
    ok = np.isfinite(yx).all(axis=1)
    yx, contrast = yx[ok], contrast[ok]
    if contrast.size:
        keep = contrast >= g.min_contrast_fraction * np.median(contrast)
        yx, contrast = yx[keep], contrast[keep]
    return yx, contrast


def _lattice_rotation(pts_mm: np.ndarray, pitch: float) -> float:
    """Lattice angle (radians, in [-45°, 45°)) from nearest-neighbour directions (4-fold mean)."""
    d = pts_mm[:, None, :] - pts_mm[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    near = (dist > 0.7 * pitch) & (dist < 1.3 * pitch)
    if not near.any():
        raise LocalizationError(f"no two grid points are one pitch ({pitch:g} mm) apart")
    ang = np.arctan2(d[..., 1][near], d[..., 0][near])
    return float(np.angle(np.mean(np.exp(4j * ang))) / 4)


def _assign(pts_mm: np.ndarray, pitch: float, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice indices of each point in the frame rotated by ``-theta`` and its offset from the node."""
    c, s = math.cos(theta), math.sin(theta)
    u = pts_mm[:, 0] * c + pts_mm[:, 1] * s
    v = -pts_mm[:, 0] * s + pts_mm[:, 1] * c
    uv = np.stack([u, v], axis=1) / pitch
    # lattice phase: circular mean of the fractional parts
    phase = np.angle(np.mean(np.exp(2j * math.pi * uv), axis=0)) / (2 * math.pi)
    ij = np.rint(uv - phase).astype(np.int64)
    off = np.abs(uv - phase - ij).max(axis=1)
    return ij, off


def rigid_fit(nominal: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation R and translation t with ``R @ nominal + t ≈ points`` (no scaling).

    Kabsch (1976) / Umeyama (1991) with the reflection guard.  Arrays are (n, 2) in mm.
    """
    mn, mp = nominal.mean(axis=0), points.mean(axis=0)
    h = (nominal - mn).T @ (points - mp)
    u, _, vt = np.linalg.svd(h)
    d = 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0
    rot = vt.T @ np.diag([1.0, d]) @ u.T
    return rot, mp - rot @ mn


#: Rank of the separable template approximation in :func:`_score`: 3 leaves ρ = 0.056 for the
#: default template, tight enough to turn away every flood in the fixtures and ../shared/data
#: (rank 2, ρ = 0.15, is not); the rank sets only how tight the bound is, never whether it holds.
BOUND_RANK = 3


def _score(image: np.ndarray, template: np.ndarray, sep: int, min_score: float, min_points: int
           ) -> np.ndarray | None:
    """The template NCC wherever it can matter for :func:`_candidates`, or None when nothing can.

    With ``tz`` the zero-mean template, ``tz_k`` its rank-k SVD truncation and ``R = tz − tz_k``,
    every window ``w`` (mean ``m``) has ``<w − m, tz> = <w − m, tz_k> + <w − m, R>`` and, by
    Cauchy-Schwarz, ``|<w − m, R>| ≤ |w − m|·|R|``: the NCC lies within ``a ± ρ``, ``a`` from
    :func:`iqa.kernels.grid.ncc_rank_k` (one cheap separable pass), ``ρ = |R|/|tz|``; 0.01 more
    covers rounding (≥ 1e5 times its size), and windows the bound cannot judge (flat, or lost to
    cancellation) count as possible peaks of both polarities.

    * Peaks of :func:`iqa.kernels.grid.local_peaks` (radius ``sep``) are more than ``sep`` apart on
      both axes, so a connected set of possible peak pixels with an h × w box holds at most
      ``ceil(h/(sep+1))·ceil(w/(sep+1))`` of them; when neither polarity can reach ``min_points``
      peaks, :func:`detect` must fail and None is returned (a flood phantom, before any match).
    * Otherwise the exact NCC (:func:`iqa.kernels.grid.match_template_at`, bit for bit
      :func:`match_template`) is computed at the possible pixels only and every other window is set
      to 0: its true |NCC| is below ``min_score`` so it is no peak of either polarity, and as
      ``min_score > 0`` a 0 cannot suppress a peak either — :func:`local_peaks` gives exactly
      the peaks of the full match.  Images with non-finite pixels, or ``min_score <= 0``, get
      the full match.
    """
    ty, tx = template.shape
    ny, nx = image.shape
    if ny < ty or nx < tx or not min_score > 0 or not np.isfinite(image).all() or not np.ptp(template) > 0:
        return match_template(image, template)
    a, rho = ncc_rank_k(image, template, BOUND_RANK)
    unsure = np.isnan(a)
    slack = rho + 0.01
    possible = [unsure | (a >= min_score - slack), unsure | (a <= -(min_score - slack))]
    feasible = False
    for mask in possible:
        if not mask.any():
            continue
        labels, _ = ndi.label(mask)
        bound = 0
        for box in ndi.find_objects(labels):
            bound += math.ceil((box[0].stop - box[0].start) / (sep + 1)) * \
                math.ceil((box[1].stop - box[1].start) / (sep + 1))
            if bound >= min_points:
                feasible = True
                break
        if feasible:
            break
    if not feasible:
        return None
    hy, hx = ty // 2, tx // 2
    score = np.full(image.shape, np.nan)
    score[hy:hy + a.shape[0], hx:hx + a.shape[1]] = 0.0
    wy, wx = np.nonzero(possible[0] | possible[1])
    score[wy + hy, wx + hx] = match_template_at(image, template, wy + hy, wx + hx)
    return score


def detect(image: np.ndarray, spacing_mm: tuple[float, float], *, geometry: GridGeometry = GEOMETRY) -> GridPoints:
    """Find the grid points of one image and their lattice nodes.

    Raises
    ------
    LocalizationError
        Fewer than ``geometry.min_points`` points sit on a lattice of the nominal pitch.
    """
    image = np.asarray(image, dtype=np.float64)
    dy, dx = spacing_mm
    best = None
    r_px = (geometry.rod_diameter_mm / 2 / dy, geometry.rod_diameter_mm / 2 / dx)
    template = _template(r_px)
    score = _score(image, template, _peak_separation(spacing_mm, geometry), geometry.min_ncc, geometry.min_points)
    for polarity in (1, -1):
        if score is None:           # no polarity can have min_points peaks: best stays None
            break
        yx, _ = _candidates(image, spacing_mm, polarity, geometry, score)
        if len(yx) < geometry.min_points:
            continue
        pts = np.stack([yx[:, 1] * dx, yx[:, 0] * dy], axis=1)
        try:
            theta = _lattice_rotation(pts, geometry.pitch_mm)
        except LocalizationError:
            continue
        ij, off = _assign(pts, geometry.pitch_mm, theta)
        good = off <= geometry.max_offset_fraction
        # one point per node: keep the one nearest the node
        order = np.argsort(off)
        seen: set[tuple[int, int]] = set()
        keep = np.zeros(len(pts), dtype=bool)
        for k in order:
            key = (int(ij[k, 0]), int(ij[k, 1]))
            if good[k] and key not in seen:
                seen.add(key)
                keep[k] = True
        cand = GridPoints(yx[keep], ij[keep], int((~keep).sum()), polarity, math.degrees(theta))
        if best is None or keep.sum() > len(best.yx_px):
            best = cand
    if best is None or len(best.yx_px) < geometry.min_points:
        found = 0 if best is None else len(best.yx_px)
        raise LocalizationError(f"found {found} grid points on a {geometry.pitch_mm:g} mm lattice "
                                f"(need {geometry.min_points}); is this a grid phantom of that pitch?")
    return best


def distortion(points: GridPoints, spacing_mm: tuple[float, float], *, geometry: GridGeometry = GEOMETRY
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Residuals (mm) of the points after the rigid fit of the nominal lattice; also R, t, nominal."""
    dy, dx = spacing_mm
    pts = np.stack([points.yx_px[:, 1] * dx, points.yx_px[:, 0] * dy], axis=1)
    nominal = points.ij.astype(np.float64) * geometry.pitch_mm
    rot, t = rigid_fit(nominal, pts)
    resid = np.linalg.norm(nominal @ rot.T + t - pts, axis=1)
    return resid, rot, t, nominal


def _occupancy(ij: np.ndarray) -> float:
    """Share of lattice nodes inside the points' index hull (row by row) that hold a point."""
    rows: dict[int, list[int]] = {}
    for i, j in ij:
        rows.setdefault(int(j), []).append(int(i))
    total = sum(max(v) - min(v) + 1 for v in rows.values())
    return len(ij) / total if total else 0.0


def _slice(series: Series, geometry: GridGeometry = GEOMETRY) -> tuple[int, np.ndarray, tuple[float, float]]:
    dy, dx = series.pixel_spacing_mm
    if not (dy > 0 and dx > 0):
        raise InputError(f"{series.where}: pixel spacing {dy} x {dx} mm is unusable")
    # a 3 x 3 lattice needs two pitches each way; this also keeps the mm-sized feature template
    # a fraction of the image (a 1e-4 mm spacing asked for a 51 GB template)
    _, ny, nx = series.volume.shape
    if min(ny * dy, nx * dx) < 2 * geometry.pitch_mm:
        raise InputError(f"{series.where}: field of view {nx * dx:.3g} x {ny * dy:.3g} mm (pixel spacing {dy:.3g} x "
                         f"{dx:.3g} mm) cannot hold a 3 x 3 grid of {geometry.pitch_mm:g} mm pitch; check PixelSpacing")
    z = series.volume.shape[0] // 2
    return z, np.asarray(series.volume[z], dtype=np.float64), (float(dy), float(dx))


def _detected(series: Series, z: int, image: np.ndarray, spacing: tuple[float, float],
              geometry: GridGeometry = GEOMETRY) -> GridPoints:
    """:func:`detect` on slice ``z`` of ``series`` (``image``), computed once per slice
    (``identify`` and ``analyze`` detect the same slice: :mod:`._memo`)."""
    return memo(series.volume, ("grid.detect", z, spacing, geometry),
                lambda: detect(image, spacing, geometry=geometry), errors=(LocalizationError,))


def identify(series: Series) -> float:
    """Confidence that the central slice shows a filled square lattice of the nominal pitch."""
    if series.modality != "MR":
        return 0.0
    try:
        z, image, spacing = _slice(series)
        pts = _detected(series, z, image, spacing)
    except (InputError, LocalizationError):
        return 0.0
    n = len(pts.yx_px)
    filled = _occupancy(pts.ij)
    on_lattice = n / (n + pts.rejected)
    return float(min(1.0, n / 25.0) * min(1.0, filled / 0.8) * on_lattice)


def analyze(series: Series, *, geometry: GridGeometry = GEOMETRY) -> PhantomAnalysis:
    """``distortion_max_mm`` and ``distortion_mean_mm`` on the central slice."""
    z, image, spacing = _slice(series, geometry)
    try:
        pts = _detected(series, z, image, spacing, geometry)
    except LocalizationError as exc:
        raise LocalizationError(f"{series.where}: slice {z}: {exc}") from None
    resid, rot, t, nominal = distortion(pts, spacing, geometry=geometry)
    out = PhantomAnalysis(phantom=NAME)
    out.add("distortion_max_mm", float(resid.max()), "mm")
    out.add("distortion_mean_mm", float(resid.mean()), "mm")
    if pts.rejected:
        out.warnings.append(f"{pts.rejected} candidate point(s) off the {geometry.pitch_mm:g} mm lattice ignored")
    filled = _occupancy(pts.ij)
    if filled < 0.9:
        out.warnings.append(f"only {100 * filled:.0f} % of the lattice nodes within the detected grid hold a point")
    worst = int(np.argmax(resid))
    out.details.update({
        "slice_index": z,
        "n_points": int(len(resid)),
        "pitch_mm": geometry.pitch_mm,
        "polarity": "bright" if pts.polarity > 0 else "dark",
        # conventions.md: angles counter-clockwise on screen (y down), lattice symmetric under 90°
        "fit_rotation_deg": (math.degrees(math.atan2(-rot[1, 0], rot[0, 0])) + 45.0) % 90.0 - 45.0,
        "fit_translation_mm": [float(v) for v in t],
        "worst_point_mm": [float(pts.yx_px[worst, 1] * spacing[1]), float(pts.yx_px[worst, 0] * spacing[0])],
        "lattice_occupancy": filled,
    })
    return out
