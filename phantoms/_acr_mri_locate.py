"""ACR MRI large phantom: find the phantom disk, its edges and rotation, and the slice roles.

Everything here is found from the pixels.  Coordinates are pixel ``(y, x)`` unless a name
ends in ``_mm``; angles follow docs/conventions.md (a point at angle θ and distance d from
the centre is at ``centre + d·(cos θ, −sin θ)`` in (x, y), so 90° is 12 o'clock).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from iqa.kernels.profiles import last_falling, sample_rays
from iqa.kernels.select import median, percentile
from iqa.phantoms._masks import box_about


@dataclass(frozen=True, slots=True)
class Disk:
    """The phantom cross-section on one slice (pixel units)."""

    cy: float
    cx: float
    radius_px: float
    signal: float        # typical phantom signal (median of the bright interior)
    background: float    # median of the air outside the phantom


@dataclass(frozen=True, slots=True)
class Edges:
    """Edge radius of the phantom along rays from the centre (pixel units)."""

    disk: Disk
    angles_rad: np.ndarray    # ray angles (conventions.md), ascending from 0
    radius_px: np.ndarray     # measured edge radius per ray (NaN when not found)
    valid: np.ndarray         # ray not occluded by an insert touching the wall
    model_px: np.ndarray      # smooth model r(θ) (Fourier series, order 2) fitted to valid rays
    level: float              # the half-signal level used


def rough_disk(image: np.ndarray) -> Disk | None:
    """Phantom centre and radius from the extents of a threshold mask.

    The threshold is 0.3 × the 99th percentile: far below the phantom signal even with the
    strong shading of 3 T head coils, far above Rayleigh background.  Rows/columns with at
    least 3 mask pixels give the extents (robust to dark inserts, grid lines and isolated
    noise); the centre is their midpoint, the radius their mean half-size.  None when nothing
    is found.
    """
    img = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    top = percentile(img[::2, ::2], [99.0])[0]        # np.percentile's value (kernels.select)
    if top <= 0:
        return None
    mask = img > 0.3 * top
    rows = np.flatnonzero(mask.sum(axis=1) >= 3)
    cols = np.flatnonzero(mask.sum(axis=0) >= 3)
    if rows.size < 5 or cols.size < 5:
        return None
    cy, cx = 0.5 * (rows[0] + rows[-1]), 0.5 * (cols[0] + cols[-1])
    radius = 0.25 * ((rows[-1] - rows[0] + 1) + (cols[-1] - cols[0] + 1))
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    outside = (yy - cy) ** 2 + (xx - cx) ** 2 > (1.15 * radius) ** 2
    bg = img[outside]
    sig = img[::2, ::2][mask[::2, ::2]]
    return Disk(float(cy), float(cx), float(radius), median(sig) if sig.size else math.nan,   # np.median's values
                median(bg[::4]) if bg.size else 0.0)


def _fourier_design(theta: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta), np.cos(2 * theta), np.sin(2 * theta)], axis=1)


def edges(image: np.ndarray, disk: Disk, *, n_rays: int = 120, step_px: float = 0.25,
          outlier_px: float = 2.0, iterations: int = 2) -> Edges:
    """Phantom edge at half the phantom signal along ``n_rays`` rays from the (refined) centre.

    The edge on each ray is the last falling crossing of ``background + 0.5·(signal −
    background)`` (ACR Large Phantom Test Guidance 2018, geometric accuracy: edge at half
    the phantom signal).  A ray is *occluded* when an insert touches the wall (the slice-1
    wedges, the slice-5 grid corners): its radius departs from the smooth model
    ``r(θ) = a0 + a1 cos θ + b1 sin θ + a2 cos 2θ + b2 sin 2θ`` by more than ``outlier_px``.
    The first harmonic is the centre offset, so the centre is refined ``iterations`` times.
    """
    theta = np.arange(n_rays) * (2 * math.pi / n_rays)
    cy, cx = disk.cy, disk.cx
    start = 0.5 * disk.radius_px          # rays start half-way out: only the wall matters
    reach = 1.35 * disk.radius_px - start
    n = int(reach / step_px) + 1
    img = np.where(np.isfinite(image), image, 0.0)
    # signal near the wall: the median of bright samples between 0.7 R and 0.9 R
    for it in range(iterations + 1):
        prof = sample_rays(img, (cy, cx), theta, step_px, n, start_px=start)
        r = start + np.arange(n) * step_px
        band = prof[:, (r > 0.7 * disk.radius_px) & (r < 0.9 * disk.radius_px)]
        band = band[np.isfinite(band)]
        rim = float(np.median(band[band > 0.5 * np.median(band)])) if band.size else disk.signal
        level = disk.background + 0.5 * (rim - disk.background)
        rad = start + last_falling(prof, level) * step_px
        ok = np.isfinite(rad)
        design = _fourier_design(theta)
        valid = ok.copy()
        coef = np.zeros(5)
        for _ in range(4):
            if valid.sum() < 8:
                break
            coef, *_ = np.linalg.lstsq(design[valid], rad[valid], rcond=None)
            resid = np.where(ok, rad - design @ coef, np.inf)
            new = ok & (np.abs(resid) <= max(outlier_px, 3 * float(np.std(resid[valid]))))
            # occluded rays are always *shorter*: also drop anything far inside the median
            new &= rad > np.median(rad[ok]) - 3 * outlier_px
            if np.array_equal(new, valid):
                break
            valid = new
        if it < iterations and valid.sum() >= 8:
            cx += coef[1]
            cy -= coef[2]
    new_disk = Disk(cy, cx, float(coef[0]) if coef[0] > 0 else disk.radius_px, rim, disk.background)
    return Edges(new_disk, theta, rad, valid, design @ coef, level)


def chord_mm(e: Edges, angle_deg: float, spacing_mm: tuple[float, float]) -> tuple[float, bool]:
    """Edge-to-edge length through the centre along ``angle_deg`` (mm) and whether both edges were seen.

    An occluded edge is taken from the smooth model r(θ).  Pixel spacing may differ in y and
    x: each radius is converted with the spacing along its direction.
    """
    dy, dx = spacing_mm
    total = 0.0
    seen = True
    for a in (angle_deg, angle_deg + 180.0):
        t = math.radians(a % 360.0)
        i = int(round(t / (2 * math.pi) * len(e.angles_rad))) % len(e.angles_rad)
        if abs(e.angles_rad[i] - t) > 1e-6 and abs(abs(e.angles_rad[i] - t) - 2 * math.pi) > 1e-6:
            raise ValueError(f"no ray at {a} degrees; use a ray count divisible by 8")
        if e.valid[i]:
            r = e.radius_px[i]
        else:
            r = e.model_px[i]
            seen = False
        total += r * math.hypot(dx * math.cos(t), dy * math.sin(t))
    return total, seen


# --------------------------------------------------------------------------- content features

def rotated_sample(image: np.ndarray, centre_yx: tuple[float, float], angle_rad: float,
                   u_px: np.ndarray, v_px: np.ndarray) -> np.ndarray:
    """Image sampled (bilinear) on a grid in the phantom frame: u along the phantom's horizontal
    axis (rotated by ``angle_rad`` counter-clockwise on screen), v downward; returns an array
    (len(v), len(u)), NaN outside the image."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    u = np.asarray(u_px, dtype=np.float64)[None, :]
    v = np.asarray(v_px, dtype=np.float64)[:, None]
    # point (u, v) in the phantom frame -> image x = cx + u c + v s, y = cy - u s + v c
    x = centre_yx[1] + u * c + v * s
    y = centre_yx[0] - u * s + v * c
    return ndimage.map_coordinates(np.asarray(image, dtype=np.float64), [y.ravel(), x.ravel()], order=1,
                                   mode="constant", cval=np.nan, prefilter=False).reshape(y.shape)


def bar_feature(image: np.ndarray, disk: Disk, angles_deg=(-6, -3, 0, 3, 6)) -> tuple[float, float, float]:
    """How dark the darkest straight band across the phantom is, relative to the phantom signal.

    The slice-thickness insert of slices 1-4 is a plastic bar ~12 mm high spanning most of the
    diameter, just above the centre.  Returns ``(darkness, v_px, angle_rad)``: darkness is the
    minimum over rows ``v ∈ [−0.4R, 0.12R]`` and a few angles of the row's 90th percentile
    over ``|u| < 0.75 R``, divided by the signal (≈ 0.1 with the bar, ≈ 1 without; the
    resolution block below the bar is narrower and does not count).
    """
    r = disk.radius_px
    u = np.linspace(-0.75 * r, 0.75 * r, 61)
    v = np.arange(-0.4 * r, 0.12 * r, 1.0)
    best = (math.inf, 0.0, 0.0)
    span = max(disk.signal - disk.background, 1e-9)
    for a in angles_deg:
        grid = rotated_sample(image, (disk.cy, disk.cx), math.radians(a), u, v)
        rows = np.percentile(np.nan_to_num(grid, nan=0.0), 90, axis=1)
        k = int(np.argmin(rows))
        val = (rows[k] - disk.background) / span
        if val < best[0]:
            best = (float(val), float(v[k]), math.radians(a))
    return best


@dataclass(frozen=True, slots=True)
class Ring:
    """The plastic ring around the low-contrast disk (slices 8-11), pixel units."""

    cy: float
    cx: float
    radius_px: float
    coverage: float      # fraction of 5° sectors in which the ring is seen (≈ 1 on slices 8-11)


def ring_feature(image: np.ndarray, disk: Disk) -> Ring:
    """Fit a circle to the dark pixels 0.35-0.6 R from the centre and say how complete it is.

    Slices 8-11 hold the low-contrast disk inside a dark plastic ring (radius ≈ 0.45 R, not
    always concentric with the phantom): the dark pixels lie on one circle all round
    (coverage ≈ 1).  Elsewhere dark pixels form bars, blocks or nothing (coverage small or
    the fit fails).  Algebraic (Kåsa) circle fit, refitted once on the pixels near the circle.
    """
    r = disk.radius_px
    ny, nx = image.shape
    y0, y1, x0, x1 = box_about((disk.cy, disk.cx), (0.75 * r, 0.75 * r), (ny, nx))
    sub = image[y0:y1, x0:x1]
    yy, xx = np.mgrid[y0:y1, x0:x1]
    d2 = (yy - disk.cy) ** 2 + (xx - disk.cx) ** 2
    # the ring sits at ~0.5 R; the annulus 0.35-0.6 R keeps out the wedge bars (from 0.6 R
    # outwards on slice 11) and the central structures of other slices
    inside = (d2 > (0.35 * r) ** 2) & (d2 < (0.6 * r) ** 2)
    thr = disk.background + 0.5 * (disk.signal - disk.background)
    dark = inside & (sub < thr)
    py, px = yy[dark].astype(float), xx[dark].astype(float)
    none = Ring(disk.cy, disk.cx, 0.0, 0.0)
    for _ in range(2):
        if py.size < 20:
            return none
        a = np.stack([px, py, np.ones_like(px)], axis=1)
        sol, *_ = np.linalg.lstsq(a, px * px + py * py, rcond=None)
        cx, cy = sol[0] / 2, sol[1] / 2
        rad2 = sol[2] + cx * cx + cy * cy
        if rad2 <= 0:
            return none
        rad = math.sqrt(rad2)
        near = np.abs(np.hypot(py - cy, px - cx) - rad) < 4.0
        py, px = py[near], px[near]
    if not (0.25 * r < rad < 0.7 * r) or math.hypot(cy - disk.cy, cx - disk.cx) > 0.2 * r:
        return none
    ang = np.arctan2(-(py - cy), px - cx)
    sectors = np.unique(((ang + math.pi) / (2 * math.pi) * 72).astype(int) % 72)
    return Ring(float(cy), float(cx), float(rad), len(sectors) / 72.0)


def no_dark_structure(image: np.ndarray, disk: Disk, *, bar_dark_max: float, min_ring_px: int = 20) -> bool:
    """True when nothing within 0.85 R of the centre is dark enough for any end feature to fire.

    A sufficient (never a necessary) condition, checked on the pixels themselves so that a
    featureless disk (a flood phantom of the ACR's size) is settled without sampling:

    * every :func:`bar_feature` sample lies within ``sqrt(0.75² + 0.4²)·R = 0.85 R`` of the
      centre and is a bilinear (convex) combination of pixels within 1.5 px of it; when the
      whole disk ``0.85 R + 1.5 px`` lies inside the image, holds no NaN and no pixel at or below
      ``background + (bar_dark_max + 0.01)·(signal − background)``, every row percentile is above
      that level, so the darkness is ``>= bar_dark_max`` (and the block is never measured);
    * :func:`ring_feature` needs at least ``min_ring_px`` (its fit's minimum) pixels below half the
      signal in the annulus 0.35-0.6 R; fewer such pixels in the whole disk means coverage 0.

    False (look properly) whenever the disk is near the image border or the signal is not above
    the background.
    """
    span = disk.signal - disk.background
    if not span > 0:
        return False
    ny, nx = image.shape
    reach = 0.85 * disk.radius_px + 1.5
    if not (disk.cy - reach >= 0 and disk.cx - reach >= 0 and disk.cy + reach <= ny - 1
            and disk.cx + reach <= nx - 1):
        return False
    y0, y1 = int(math.floor(disk.cy - reach)), int(math.ceil(disk.cy + reach)) + 1
    x0, x1 = int(math.floor(disk.cx - reach)), int(math.ceil(disk.cx + reach)) + 1
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = (yy - disk.cy) ** 2 + (xx - disk.cx) ** 2 <= reach * reach
    vals = np.asarray(image[y0:y1, x0:x1], dtype=np.float64)[inside]
    if not vals.min() > disk.background + (bar_dark_max + 0.01) * span:     # NaN: False
        return False
    return int(np.count_nonzero(vals < disk.background + 0.5 * span)) < min_ring_px


def block_feature(image: np.ndarray, disk: Disk, angle_rad: float, bar_v_px: float) -> float:
    """Fraction of dark pixels in the region below the slice-thickness bar (the resolution insert).

    Slice 1 holds the resolution insert, a plastic block ~ 60 % of the diameter wide below the
    bar: the fraction is ≈ 0.6-0.9 there and small on slices 2-4.
    """
    r = disk.radius_px
    u = np.linspace(-0.45 * r, 0.45 * r, 46)
    v = np.linspace(bar_v_px + 0.2 * r, bar_v_px + 0.38 * r, 10)
    grid = rotated_sample(image, (disk.cy, disk.cx), angle_rad, u, v)
    thr = disk.background + 0.5 * (disk.signal - disk.background)
    return float(np.mean(grid < thr))
