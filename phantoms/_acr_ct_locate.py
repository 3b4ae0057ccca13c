"""ACR CT 464 localisation: which slices show which module, phantom centre, in-plane rotation.

Everything here is found from the pixels (never from slice numbers or the series
description), following the layout in docs/conventions.md (ACR CT 464: Ø 200 mm, four
40 mm modules along z, module 1 first; ACR CT QC Manual 2017, phantom description):

* every slice gets a cheap signature from a subsampled view (pixels about 2 mm): phantom
  area and centroid, median CT number inside r < 85 mm, and the fractions of very low
  (< −500 HU) and high (> 300 HU) pixels in the 45–75 mm annulus where the module-1 inserts
  and the module-4 bar blocks lie.  A slice is labelled 1 (air and bone inserts), 2 (+90 HU
  background), 3 (uniform water), 4 (high-contrast bars, no air) or 0 (no phantom);
* one rigid z model (module-1 face z0, direction ±1, 40 mm modules) is fitted to all labels,
  so a partial-volume slice or two cannot move the modules, and partial series still give
  the modules they cover;
* the centre is a least-squares circle through sub-pixel edge points on radial profiles;
* the rotation is the circular mean of the angular offsets of the four non-water inserts of
  module 1 (water has no contrast), each found as the centroid of its contrast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from iqa.kernels.bars import bilinear

#: Threshold (HU) between air and phantom material.
AIR_THRESHOLD_HU = -500.0
#: Threshold (HU) for "high-contrast" material (bone insert, bars).
HIGH_THRESHOLD_HU = 300.0


@dataclass(frozen=True, slots=True)
class SliceSignature:
    """Per-slice content summary (arrays over z)."""

    area_mm2: np.ndarray          # phantom-material area (> −500 HU)
    cy_px: np.ndarray             # centroid of that area, full-resolution pixels
    cx_px: np.ndarray
    median_hu: np.ndarray         # robust level (clipped mean) inside r < 85 mm
    low_fraction: np.ndarray      # < −500 HU in the 45–75 mm annulus
    high_fraction: np.ndarray     # > 300 HU in the 45–75 mm annulus
    touches_border: np.ndarray    # phantom material on the image border
    labels: np.ndarray            # 0 none, 1..4 module, −1 ambiguous


@dataclass(frozen=True, slots=True)
class ZModel:
    """Fitted module layout along z: module k spans ``z0 + d·[40(k−1), 40k]`` (mm)."""

    z0_mm: float
    direction: int                # +1: module 1 at lower z; −1: at higher z; 0 unknown
    uncertainty_mm: float         # half-width of the plateau of equally good fits
    score: float                  # fraction of labelled slices the model explains

    def module_of(self, z_mm: np.ndarray, module_length_mm: float) -> np.ndarray:
        d = self.direction or 1
        u = d * (np.asarray(z_mm, dtype=np.float64) - self.z0_mm)
        k = np.floor(u / module_length_mm).astype(int) + 1
        return np.where((u >= 0) & (u < 4 * module_length_mm), k, 0)

    def centre_of(self, module: int, module_length_mm: float) -> float:
        d = self.direction or 1
        return self.z0_mm + d * (module - 0.5) * module_length_mm


def slice_signatures(volume: np.ndarray, spacing_yx_mm: tuple[float, float], *,
                     diameter_mm: float, step_mm: float = 2.0) -> SliceSignature:
    """Cheap content signature of every slice from a subsampled view (no copy of the volume).

    Labels follow the ACR CT 464 module contents (docs/conventions.md).
    """
    dy, dx = spacing_yx_mm
    # at most the matrix size, so even a field of view far below step_mm keeps one sample per slice
    s = max(1, min(int(round(min(step_mm / min(dy, dx), 1e9))), *volume.shape[1:]))
    sub = volume[:, s // 2::s, s // 2::s]
    nz, h, w = sub.shape
    sy, sx = dy * s, dx * s
    mask = sub > AIR_THRESHOLD_HU
    count = mask.sum(axis=(1, 2)).astype(np.float64)
    area = count * sy * sx
    yy = (np.arange(h) * s + s // 2).astype(np.float64)
    xx = (np.arange(w) * s + s // 2).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (mask.sum(axis=2) @ yy) / count
        cx = (mask.sum(axis=1) @ xx) / count
    touches = (mask[:, 0, :].any(axis=1) | mask[:, -1, :].any(axis=1)
               | mask[:, :, 0].any(axis=1) | mask[:, :, -1].any(axis=1))
    disk = math.pi * (diameter_mm / 2) ** 2
    present = area > 0.4 * disk
    # one centre for all slices (the median centroid): the masks below are 2-D and the
    # per-slice sums are matrix products, so the cost is one pass over the subsampled volume
    c_y = float(np.median(cy[present])) if present.any() else h * s / 2
    c_x = float(np.median(cx[present])) if present.any() else w * s / 2
    r2 = ((yy[:, None] - c_y) * dy) ** 2 + ((xx[None, :] - c_x) * dx) ** 2
    inner = (r2 < (0.425 * diameter_mm) ** 2).ravel()
    ann = ((r2 > (0.225 * diameter_mm) ** 2) & (r2 < (0.375 * diameter_mm) ** 2)).ravel()
    flat = sub.reshape(nz, -1)
    # robust level: mean of values clipped to [-200, 300] HU (inserts and bars move it < 15 HU)
    n_in, n_ann = max(int(inner.sum()), 1), max(int(ann.sum()), 1)   # empty on tiny or odd images
    level = np.clip(flat[:, inner], -200.0, 300.0).sum(axis=1) / n_in
    ring = flat[:, ann]
    low = (ring < AIR_THRESHOLD_HU).sum(axis=1) / n_ann
    high = (ring > HIGH_THRESHOLD_HU).sum(axis=1) / n_ann
    median = np.where(present, level, np.nan)
    labels = np.array([_label(m, lo, hi) if ok else 0 for m, lo, hi, ok in zip(median, low, high, present)],
                      dtype=np.int64)
    return SliceSignature(area, cy, cx, median, low, high, touches, labels)


def _label(level: float, low: float, high: float) -> int:
    """Module from a slice signature (ACR CT 464 contents; −1 when unclear).

    The level thresholds leave out slices mixing the +90 HU module with a 0 HU one by more
    than ~1/6 (partial volume across a module face), so they cannot pass for either.
    """
    if 75.0 <= level <= 200.0 and low < 0.005 and high < 0.005:
        return 2                                  # +90 HU low-contrast module
    if low > 0.015 and high > 0.015 and abs(level) < 30.0:
        return 1                                  # air + bone inserts
    if high > 0.03 and low < 0.005 and -15.0 < level < 45.0:
        return 4                                  # bar blocks (clipped bars lift the level)
    if high < 0.003 and low < 0.003 and abs(level) < 15.0:
        return 3                                  # uniform
    return -1


def fit_z_model(positions_mm: np.ndarray, labels: np.ndarray, *, module_length_mm: float,
                step_mm: float = 0.1) -> ZModel | None:
    """Fit module-1 face and direction to the slice labels (maximum agreement).

    Among equally good offsets the middle of the widest plateau is taken; its half-width is
    the uncertainty.  Returns None when no slice carries a module label.
    """
    pos = np.asarray(positions_mm, dtype=np.float64)
    lab = np.asarray(labels)
    valid = lab >= 0
    if not np.any(lab > 0):
        return None
    span = 4 * module_length_mm
    lo, hi = pos.min() - span - module_length_mm, pos.max() + span + module_length_mm
    z0 = np.arange(lo, hi + step_mm, step_mm)
    best = None
    n_valid = max(int(valid.sum()), 1)
    for d in (1, -1):
        u = d * (pos[None, valid] - z0[:, None])
        k = np.floor(u / module_length_mm).astype(np.int64) + 1
        pred = np.where((u >= 0) & (u < span), k, 0)
        score = (pred == lab[None, valid]).sum(axis=1)
        top = score.max()
        runs = _runs(score == top)
        a, b = max(runs, key=lambda r: r[1] - r[0])
        cand = (top, b - a, d, 0.5 * (z0[a] + z0[b - 1]), 0.5 * (z0[b - 1] - z0[a]))
        if best is None or cand[:2] > best[:2]:
            best = cand
        elif cand[:2] == best[:2]:
            best = best[:2] + (0,) + best[3:]      # both directions explain it equally
    top, _, d, z, unc = best
    if d == 0:
        # Direction unknown (a single module seen): keep +1 but refit the offset for it.
        u = pos[None, valid] - z0[:, None]
        k = np.floor(u / module_length_mm).astype(np.int64) + 1
        pred = np.where((u >= 0) & (u < span), k, 0)
        score = (pred == lab[None, valid]).sum(axis=1)
        runs = _runs(score == score.max())
        a, b = max(runs, key=lambda r: r[1] - r[0])
        z, unc = 0.5 * (z0[a] + z0[b - 1]), 0.5 * (z0[b - 1] - z0[a])
    return ZModel(float(z), int(d), float(unc), float(top) / n_valid)


def refine_z_model(positions_mm: np.ndarray, sig: SliceSignature, zm: ZModel, *, module_length_mm: float,
                   diameter_mm: float, thickness_mm: float) -> tuple[ZModel, list[float]]:
    """Sharpen the module faces to a fraction of the slice spacing.

    At each face between two covered regions a feature of the signature steps between two
    plateaus: the phantom area at the end faces, the CT-number level at the faces of the
    +90 HU module 2, the high-contrast fraction between modules 3 and 4.  With a symmetric
    slice profile the feature crosses the mean of its plateaus exactly at the face, so the
    crossing (linear interpolation between slices) locates the face; the faces found give
    z0 (mean).  Returns the refined model and the face positions used.
    """
    pos = np.asarray(positions_mm, dtype=np.float64)
    order = np.argsort(pos)
    pos = pos[order]
    disk = math.pi * (diameter_mm / 2) ** 2
    feats = {0: sig.area_mm2 / disk, 1: sig.median_hu, 2: sig.median_hu, 3: sig.high_fraction,
             4: sig.area_mm2 / disk}
    d = zm.direction or 1
    clear = 0.5 * thickness_mm + 2.0 + zm.uncertainty_mm
    estimates, faces = [], []
    for k, f in feats.items():
        f = np.nan_to_num(np.asarray(f, dtype=np.float64)[order], nan=0.0)
        face = zm.z0_mm + d * k * module_length_mm
        before = d * (pos - face)               # < 0 on the module-k side (module 0 = outside)
        a_side = (before < -clear) & (before > -module_length_mm + clear)
        b_side = (before > clear) & (before < module_length_mm - clear)
        if not (a_side.any() and b_side.any()):
            continue
        a, b = float(np.mean(f[a_side])), float(np.mean(f[b_side]))
        if abs(a - b) < 1e-3 + 0.1 * max(abs(a), abs(b)):
            continue
        level = 0.5 * (a + b)
        near = np.flatnonzero(np.abs(before) <= clear + thickness_mm + np.max(np.diff(pos), initial=0.0))
        if near.size < 2:
            continue
        above = f[near] > level
        zc = []
        for i, j in zip(near[:-1], near[1:]):
            if j == i + 1 and above[near == i][0] != above[near == j][0]:
                t = (level - f[i]) / (f[j] - f[i])
                zc.append(pos[i] + t * (pos[j] - pos[i]))
        if len(zc) != 1:
            continue
        faces.append(zc[0])
        estimates.append(zc[0] - d * k * module_length_mm)
    if not estimates:
        return zm, []
    z0 = float(np.mean(estimates))
    spread = float(np.max(np.abs(np.asarray(estimates) - z0)))
    return ZModel(z0, zm.direction, max(spread, 0.25), zm.score), faces


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges of consecutive True values."""
    f = np.concatenate(([False], np.asarray(flags, bool), [False]))
    edges = np.flatnonzero(f[1:] != f[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


# --------------------------------------------------------------------------- centre

@dataclass(frozen=True, slots=True)
class Circle:
    cy_px: float
    cx_px: float
    radius_mm: float
    rms_mm: float             # residual of the edge points
    n_points: int


def fit_outline(image: np.ndarray, spacing_yx_mm: tuple[float, float], guess_yx_px: tuple[float, float], *,
                radius_mm: float, inside_hu: float, outside_hu: float = -1000.0,
                n_angles: int = 360, search_mm: float = 12.0) -> Circle:
    """Sub-pixel circle through the phantom's outer edge.

    Radial profiles from ``guess`` are sampled (bilinear, 0.1 mm steps) across
    ``radius ± search``; on each, the crossing of the level halfway between ``inside_hu`` and
    ``outside_hu`` nearest the outside is located by linear interpolation, and a circle is
    fitted by least squares (Kasa fit, then two rounds dropping points beyond 3 MAD).
    A symmetric PSF moves every edge point alike, so the centre is unbiased.
    """
    dy, dx = spacing_yx_mm
    ang = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    r = np.arange(radius_mm - search_mm, radius_mm + search_mm, 0.1)
    ys = guess_yx_px[0] - np.sin(ang)[:, None] * r[None, :] / dy
    xs = guess_yx_px[1] + np.cos(ang)[:, None] * r[None, :] / dx
    prof = bilinear(image, ys.ravel(), xs.ravel()).reshape(ys.shape)
    level = 0.5 * (inside_hu + outside_hu)
    above = prof > level
    ok = np.isfinite(prof).all(axis=1)
    # last sample above the level (walking outwards) followed by one below
    idx = np.where(above[:, :-1] & ~above[:, 1:], np.arange(r.size - 1)[None, :], -1).max(axis=1)
    ok &= idx >= 0
    rows = np.flatnonzero(ok)
    i = idx[rows]
    p0, p1 = prof[rows, i], prof[rows, i + 1]
    t = (p0 - level) / (p0 - p1)
    re = r[i] + t * (r[1] - r[0])
    ey = -np.sin(ang[rows]) * re            # mm, relative to the guess
    ex = np.cos(ang[rows]) * re
    keep = np.ones(rows.size, bool)
    cy = cx = rad = 0.0
    res = np.zeros(0)
    for _ in range(3):
        if keep.sum() < 8:
            break
        cy, cx, rad = _kasa(ey[keep], ex[keep])
        res = np.hypot(ey - cy, ex - cx) - rad
        mad = np.median(np.abs(res[keep] - np.median(res[keep])))
        keep = np.abs(res - np.median(res[keep])) <= max(3 * 1.4826 * mad, 0.05)
    if keep.sum() < 8:
        return Circle(math.nan, math.nan, math.nan, math.nan, int(keep.sum()))
    return Circle(guess_yx_px[0] + cy / dy, guess_yx_px[1] + cx / dx, float(rad),
                  float(np.sqrt(np.mean(res[keep] ** 2))), int(keep.sum()))


def _kasa(y: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Algebraic least-squares circle (Kasa 1976): returns centre (y, x) and radius."""
    a = np.column_stack([x, y, np.ones_like(x)])
    b = x * x + y * y
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    return float(cy), float(cx), float(np.sqrt(sol[2] + cx * cx + cy * cy))


# --------------------------------------------------------------------------- rotation

def point_px(centre_yx_px: tuple[float, float], spacing_yx_mm: tuple[float, float],
             angle_deg: float, distance_mm: float) -> tuple[float, float]:
    """Pixel (y, x) of the point at ``angle`` (deg, counter-clockwise from +x, 90° = 12 o'clock)
    and ``distance`` (mm) from the centre (docs/conventions.md, image coordinates)."""
    a = math.radians(angle_deg)
    return (centre_yx_px[0] - distance_mm * math.sin(a) / spacing_yx_mm[0],
            centre_yx_px[1] + distance_mm * math.cos(a) / spacing_yx_mm[1])


def angle_of(centre_yx_px, spacing_yx_mm, point_yx_px) -> float:
    """Angle (deg) of a point about the centre, conventions' sense (counter-clockwise on screen)."""
    ymm = (point_yx_px[0] - centre_yx_px[0]) * spacing_yx_mm[0]
    xmm = (point_yx_px[1] - centre_yx_px[1]) * spacing_yx_mm[1]
    return math.degrees(math.atan2(-ymm, xmm))


def coarse_rotation(image, centre_yx_px, spacing_yx_mm, inserts, *, distance_mm: float,
                    radius_mm: float, background_hu: float, search_deg: float = 12.0,
                    step_deg: float = 0.25) -> tuple[float, float]:
    """Rotation (deg) maximising the correlation of the angular profile at the insert radius
    with the nominal insert pattern; returns (rotation, correlation coefficient).

    ``inserts`` is a sequence of (angle_deg, nominal_hu).  Profiles are clipped to ±150 HU so
    the weak inserts count as much as air and bone.
    """
    dy, dx = spacing_yx_mm
    th = np.arange(0.0, 360.0, step_deg)
    radii = distance_mm + np.array([-0.5, -0.25, 0.0, 0.25, 0.5]) * radius_mm
    a = np.radians(th)
    ys = centre_yx_px[0] - np.sin(a)[None, :] * radii[:, None] / dy
    xs = centre_yx_px[1] + np.cos(a)[None, :] * radii[:, None] / dx
    prof = np.nanmean(bilinear(image, ys.ravel(), xs.ravel()).reshape(ys.shape), axis=0)
    prof = np.nan_to_num(prof, nan=background_hu)
    prof = np.clip(prof - background_hu, -150, 150)
    half = math.degrees(math.asin(min(radius_mm / distance_mm, 1.0)))
    tmpl = np.zeros_like(th)
    for ang, hu in inserts:
        d = (th - ang + 180.0) % 360.0 - 180.0
        tmpl[np.abs(d) <= half] = hu - background_hu
    tmpl = np.clip(tmpl, -150, 150)
    shifts = np.arange(-search_deg, search_deg + step_deg / 2, step_deg)
    p = prof - prof.mean()
    t = tmpl - tmpl.mean()
    norm = np.sqrt((p * p).sum() * (t * t).sum())
    cc = np.array([(p * np.roll(t, int(round(s / step_deg)))).sum() for s in shifts])
    cc = cc / norm if norm > 0 else cc * 0
    i = int(np.argmax(cc))
    return float(shifts[i]), float(cc[i])


def blob_centroid(image, guess_yx_px, spacing_yx_mm, *, window_mm: float, sign: float,
                  background_hu: float, iterations: int = 3) -> tuple[float, float]:
    """Centroid (px) of the contrast ``sign·(image − background)`` in a disk of radius
    ``window_mm`` about the guess, re-centred ``iterations`` times.

    The weights are not clipped, so zero-mean noise does not pull the centroid toward the
    window centre; the window must hold the whole object and nothing else.
    """
    dy, dx = spacing_yx_mm
    cy, cx = guess_yx_px
    ny, nx = image.shape
    for _ in range(iterations):
        ry, rx = window_mm / dy, window_mm / dx
        y0, y1 = max(int(math.floor(cy - ry)), 0), min(int(math.ceil(cy + ry)) + 1, ny)
        x0, x1 = max(int(math.floor(cx - rx)), 0), min(int(math.ceil(cx + rx)) + 1, nx)
        if y1 <= y0 or x1 <= x0:
            return math.nan, math.nan
        yy = np.arange(y0, y1, dtype=np.float64)[:, None]
        xx = np.arange(x0, x1, dtype=np.float64)[None, :]
        inside = ((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2 <= window_mm ** 2
        w = np.where(inside, sign * (image[y0:y1, x0:x1].astype(np.float64) - background_hu), 0.0)
        total = w.sum()
        if not total > 0:
            return math.nan, math.nan
        cy = float((w * yy).sum() / total)
        cx = float((w * xx).sum() / total)
    return cy, cx


def circular_mean_deg(angles_deg) -> float:
    a = np.radians(np.asarray(angles_deg, dtype=np.float64))
    return float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())))


def wrap_deg(a: float) -> float:
    return (a + 180.0) % 360.0 - 180.0
