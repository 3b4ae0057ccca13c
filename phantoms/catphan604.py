"""CatPhan 604 (The Phantom Laboratory): sensitometry, uniformity, MTF, line pairs, slice width.

Nominal geometry from the Catphan 604 manual and common practice (module z offsets from the
CTP732 sensitometry module: CTP714 line pairs +42 mm, CTP715 low contrast −40 mm, CTP729
uniformity −80 mm; sensitometry inserts Ø 12.2 mm centred 58.7 mm from the axis; four Ø 3 mm
geometry holes on a 50 mm square; two 23° wire ramps).  Everything is *found* in the images:

* every slice gets a content label from a subsampled copy: sensitometry (air *and* dense
  inserts on the 58.7 mm ring), line pairs (dense bars, no air), uniform, or no phantom;
* the CTP732 centre along z comes from the wire ramps (the ramp wire crosses the slice at
  ``u = (z − z_c)/tan 23°``), the direction of the other modules from where the line-pair
  slices lie;
* the in-plane centre is a circle fit to the phantom outline; the rotation comes from the four
  geometry holes (a square, so modulo 90°), the branch chosen by the air insert (12 o'clock);
* the nine inserts are found on the 58.7 mm ring as the nine strongest contrast blobs and named
  by the rank of their CT numbers (air < PMP < LDPE < polystyrene < acrylic < bone 20 % <
  Delrin < bone 50 % < Teflon), so neither the insert order nor a calibration error can swap
  them.

Metrics (docs/conventions.md): ``hu_<material>`` (Ø 7 mm ROI at each insert centre), linearity
(slope, intercept, R² against nominal), ``water_hu``/``noise_hu``/``uniformity_hu`` from CTP729
(water-cylinder ROI rule with D = 200 mm), ``mtf50_lpcm``/``mtf10_lpcm`` from the Teflon edge
(TG-233), ``resolution_lpcm`` from CTP714 (finest group with square-wave CTF ≥ 0.10, Coltman
1954), ``slice_thickness_mm`` (FWHM along the 23° ramps × tan 23°), ``nps_*`` from CTP729 and
``lcd_visible`` (CTP715 supra-slice targets whose disk CNR reaches the Rose threshold).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from iqa.errors import InputError, LocalizationError
from iqa.kernels.bars import bilinear
from iqa.phantoms import _ct
from iqa.phantoms._masks import box_about
from iqa.phantoms._memo import memo
from iqa.result import PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "catphan-604"
MODALITY = "CT"


@dataclass(frozen=True, slots=True)
class Material:
    name: str
    nominal_hu: float


@dataclass(frozen=True, slots=True)
class CatPhan604Geometry:
    """Nominal layout (mm, degrees; docs/conventions.md angle convention)."""

    diameter_mm: float = 200.0
    module_offsets_mm: tuple[tuple[str, float], ...] = (("CTP732", 0.0), ("CTP714", 42.0), ("CTP715", -40.0),
                                                         ("CTP729", -80.0))
    module_half_mm: tuple[tuple[str, float], ...] = (("CTP732", 12.5), ("CTP714", 12.5), ("CTP715", 12.5),
                                                      ("CTP729", 20.0))
    #: CTP732 materials in ascending CT number (Catphan 604 manual nominal values)
    materials: tuple[Material, ...] = (
        Material("air", -1000.0), Material("pmp", -196.0), Material("ldpe", -104.0),
        Material("polystyrene", -47.0), Material("acrylic", 115.0), Material("bone20", 237.0),
        Material("delrin", 365.0), Material("bone50", 725.0), Material("teflon", 1000.0))
    insert_distance_mm: float = 58.7
    insert_radius_mm: float = 6.1
    insert_roi_radius_mm: float = 3.5
    air_angle_deg: float = 90.0
    holes_half_side_mm: float = 25.0
    hole_radius_mm: float = 1.5
    ramp_v_mm: float = 35.0
    ramp_half_length_mm: float = 20.0
    ramp_angle_deg: float = 23.0
    lp_radius_range_mm: tuple[float, float] = (35.0, 70.0)
    lp_lpcm: tuple[int, ...] = tuple(range(1, 22))
    lp_bars: int = 4
    ctf_threshold: float = 0.10
    lc_radius_mm: float = 50.0
    lc_diameters_mm: tuple[float, ...] = (15.0, 9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0)
    rose_k: float = 4.0
    nps_roi_mm: float = 32.0

    def offset(self, module: str) -> float:
        return dict(self.module_offsets_mm)[module]

    def half(self, module: str) -> float:
        return dict(self.module_half_mm)[module]


GEOMETRY = CatPhan604Geometry()

LABEL_NONE, LABEL_SENSITOMETRY, LABEL_LINEPAIRS, LABEL_UNIFORM = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Signatures:
    """Per-slice content summary (arrays over z)."""

    present: np.ndarray
    cy_px: np.ndarray
    cx_px: np.ndarray
    radius_mm: np.ndarray
    median_hu: np.ndarray
    n_insert_blobs: np.ndarray
    labels: np.ndarray


# --------------------------------------------------------------------------- slice labelling


def _signatures(volume: np.ndarray, spacing_mm, step_mm: float = 1.2) -> Signatures:
    from scipy import ndimage
    dy, dx = spacing_mm
    s = max(1, int(round(step_mm / min(dy, dx))))
    sub = volume[:, ::s, ::s]
    sy, sx = dy * s, dx * s
    nz = sub.shape[0]
    present = np.zeros(nz, bool)
    cy = np.full(nz, np.nan)
    cx = np.full(nz, np.nan)
    rad = np.full(nz, np.nan)
    med = np.full(nz, np.nan)
    blobs = np.zeros(nz, int)
    labels = np.zeros(nz, int)
    yy, xx = np.ogrid[0:sub.shape[1], 0:sub.shape[2]]
    for z in range(nz):
        img = sub[z]
        mask = img > -500.0
        cnt = int(mask.sum())
        area = cnt * sy * sx
        if area < math.pi * 60.0 ** 2:
            continue
        present[z] = True
        c_y = float((mask.sum(axis=1) * yy[:, 0]).sum()) / cnt
        c_x = float((mask.sum(axis=0) * xx[0]).sum()) / cnt
        cy[z], cx[z] = c_y * s, c_x * s
        rad[z] = math.sqrt(area / math.pi)
        # every test below looks within max(0.85 R, 75 mm) of the centre: work on that box
        # (plus the 3 x 3 filter's margin), same pixels and results, ~half the work
        reach = max(0.85 * rad[z], 75.0)
        y0, y1, x0, x1 = box_about((c_y, c_x), (reach / sy, reach / sx), img.shape, margin=(2, 3))
        img, mask = img[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        r2 = ((yy[y0:y1] - c_y) * sy) ** 2 + ((xx[:, x0:x1] - c_x) * sx) ** 2     # mm²
        inner = r2 < (0.85 * rad[z]) ** 2
        bg = float(np.median(img[inner & mask]))
        med[z] = bg
        ring = (r2 > 50.0 ** 2) & (r2 < 67.0 ** 2)
        lp_ring = (r2 > 30.0 ** 2) & (r2 < 75.0 ** 2)
        low = ring & (img < -500.0)
        high = ring & (img > bg + 400.0)
        if low.sum() * sy * sx > 40.0 and high.sum() * sy * sx > 40.0:
            labels[z] = LABEL_SENSITOMETRY
            # insert-sized blobs of clear contrast on the 58.7 mm ring
            # the ring's own box (plus the 3 x 3 filter's margin) holds every candidate pixel
            ry0, ry1, rx0, rx1 = box_about((c_y - y0, c_x - x0), (67.0 / sy, 67.0 / sx), img.shape, margin=(2, 3))
            box = img[ry0:ry1, rx0:rx1]
            odd = ring[ry0:ry1, rx0:rx1] & (np.abs(ndimage.uniform_filter(box, 3) - bg) > 90.0)
            lab, n = ndimage.label(odd)
            if n:
                sizes = np.bincount(lab.ravel())[1:] * sy * sx
                blobs[z] = int(((sizes > 50.0) & (sizes < 220.0)).sum())
        elif (lp_ring & (img > bg + 300.0)).sum() * sy * sx > 20.0 and (lp_ring & (img < -500)).sum() * sy * sx < 10:
            labels[z] = LABEL_LINEPAIRS
        else:
            labels[z] = LABEL_UNIFORM
    return Signatures(present, cy, cx, rad, med, blobs, labels)


def _signatures_of(series) -> Signatures:
    """The series' slice signatures, computed once for ``identify`` and ``analyze`` together."""
    vol, spacing = series.volume, series.pixel_spacing_mm
    return memo(vol, ("catphan604.signatures", tuple(map(float, spacing))), lambda: _signatures(vol, spacing))


def identify(series) -> float:
    """Confidence (0..1) that ``series`` is a CatPhan 604.

    A CatPhan shows, on at least one slice, a Ø ~200 mm body with at least six insert-sized
    (Ø ~12 mm) contrast blobs on the 58.7 mm ring (air, PMP, LDPE, bone, Delrin, Teflon ...);
    a water cylinder has none and the ACR 464 has four Ø 25 mm ones.
    """
    if getattr(series, "modality", "") != "CT":
        return 0.0
    sig = _signatures_of(series)
    ok = sig.present & (np.abs(sig.radius_mm - 100.0) < 12.0)
    if not ok.any():
        return 0.0
    sens = ok & (sig.labels == LABEL_SENSITOMETRY)
    best = int(sig.n_insert_blobs[sens].max()) if sens.any() else 0
    if best >= 6:
        return 0.9
    return 0.2 if best >= 3 else 0.05


# --------------------------------------------------------------------------- localisation


@dataclass(slots=True)
class Located:
    centre_yx_px: tuple[float, float]
    rotation_deg: float
    z_c_mm: float
    direction: int
    modules: dict[str, list[int]] = field(default_factory=dict)
    holes: list = field(default_factory=list)
    #: (slice index, ramp v mm) -> (FWHM mm, centre u mm) of the wire-ramp profiles measured
    #: while locating (the slice-thickness measurement reuses them)
    ramps: dict = field(default_factory=dict)


def _ramp_profile(image, spacing, centre, rotation_deg, v_mm, u_half_mm, width_mm=2.5, step_mm=0.1):
    """Profile along a ramp wire (phantom u axis at v), background-subtracted, summed across the wire."""
    rot = math.radians(rotation_deg)
    u = np.arange(-u_half_mm, u_half_mm + 1e-9, step_mm)
    vs = np.arange(-width_mm, width_mm + 1e-9, 0.25 * min(spacing))
    bgs = np.array([-width_mm - 3.0, width_mm + 3.0])

    def sample(v_off):
        uu, vv = np.meshgrid(u, v_mm + v_off, indexing="ij")
        # object (u, v) -> image mm: rotate by rotation (counter-clockwise on screen)
        xi = uu * math.cos(rot) + vv * math.sin(rot)
        yi = -uu * math.sin(rot) + vv * math.cos(rot)
        ys = centre[0] + yi / spacing[0]
        xs = centre[1] + xi / spacing[1]
        return bilinear(image, ys.ravel(), xs.ravel()).reshape(uu.shape)

    wire = sample(vs)
    bg = np.nanmean(sample(bgs), axis=1)
    return u, np.nansum(wire - bg[:, None], axis=1) * (vs[1] - vs[0])


def _fwhm(u: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """FWHM and centre of a plateau-shaped profile (wire ramp), robust to noise.

    The plateau level is the mean over the central 60 % between first-pass half-maximum
    crossings (the maximum of a noisy profile is biased up and would shrink the FWHM); each
    edge's half-level position comes from a straight-line fit to the edge samples between
    25 % and 75 % of the plateau.
    """
    from scipy.ndimage import uniform_filter1d
    ps = uniform_filter1d(p, 5)
    i = int(np.argmax(ps))
    peak = float(np.median(ps[max(0, i - 3): i + 4]))
    if not peak > 0:
        return float("nan"), float("nan")

    def crossings(level):
        above = ps >= level
        lo = i
        while lo > 0 and above[lo - 1]:
            lo -= 1
        hi = i
        while hi < ps.size - 1 and above[hi + 1]:
            hi += 1
        return lo, hi

    lo, hi = crossings(0.5 * peak)
    if lo == 0 or hi == ps.size - 1:
        return float("nan"), float("nan")
    n = hi - lo
    plateau = float(np.mean(p[lo + int(0.2 * n): hi - int(0.2 * n) + 1])) if n >= 5 else peak
    half = 0.5 * plateau

    def edge(sl, rising):
        uu, pp = u[sl], p[sl]
        band = (pp > 0.25 * plateau) & (pp < 0.75 * plateau)
        if band.sum() >= 3:
            a, b = np.polyfit(uu[band], pp[band], 1)
            if (a > 0) == rising and a != 0:
                return (half - b) / a
        return float("nan")

    w = int(max(3, 0.35 * n))
    ul = edge(slice(max(lo - w, 0), min(lo + w, ps.size)), True)
    ur = edge(slice(max(hi - w, 0), min(hi + w + 1, ps.size)), False)
    if not (np.isfinite(ul) and np.isfinite(ur)):
        return float("nan"), float("nan")
    return float(ur - ul), float(0.5 * (ur + ul))


def _find_holes_rotation(image, spacing, centre, rot0, g: CatPhan604Geometry, bg: float) -> tuple[float, list]:
    """Rotation (deg) from the four geometry holes near their positions for rotation ``rot0``."""
    d = g.holes_half_side_mm * math.sqrt(2.0)
    offsets, found = [], []
    for k, nominal in enumerate((45.0, 135.0, 225.0, 315.0)):
        guess = _ct.position_px(centre, spacing, nominal, d, rot0)
        r_px = g.hole_radius_mm / spacing[0]
        cy, cx = _ct.refine_disk_centre(image, guess, r_px, margin_px=2.5 / spacing[0], inside_hu=-1000.0,
                                        outside_hu=bg, iterations=4)
        ang = math.degrees(math.atan2(-(cy - centre[0]) * spacing[0], (cx - centre[1]) * spacing[1]))
        offsets.append((ang - nominal + 180.0) % 360.0 - 180.0)
        found.append((cy, cx))
    off = np.array(offsets)
    rot = float(np.degrees(np.angle(np.mean(np.exp(1j * np.radians(off))))))
    return rot, found


def _ring_blobs(image, spacing, centre, g: CatPhan604Geometry, bg: float, n: int = 9):
    """Angles (deg) of the ``n`` strongest insert-sized contrast blobs on the insert ring."""
    from scipy.ndimage import uniform_filter1d
    th = np.arange(0.0, 360.0, 0.5)
    rs = np.arange(g.insert_distance_mm - 3.0, g.insert_distance_mm + 3.01, 0.5)
    pts = _ct.position_px(centre, spacing, th[:, None], rs[None, :])
    prof = np.nanmean(bilinear(image, pts[..., 0].ravel(), pts[..., 1].ravel()).reshape(pts.shape[:2]), axis=1) - bg
    width = int(round(math.degrees(2 * 0.7 * g.insert_radius_mm / g.insert_distance_mm) / 0.5))
    a = uniform_filter1d(np.abs(prof), width, mode="wrap")
    sep = int(round(math.degrees(2.2 * g.insert_radius_mm / g.insert_distance_mm) / 0.5))
    order = np.argsort(a)[::-1]
    # strongest first, each at least ``sep`` samples (circularly) from those already picked
    picked: list[int] = []
    blocked = np.zeros(th.size, dtype=bool)
    k = np.arange(th.size)
    while len(picked) < n:
        free = order[~blocked[order]]
        if free.size == 0:
            break
        i = int(free[0])
        picked.append(i)
        d = np.abs(k - i)
        blocked |= np.minimum(d, th.size - d) < sep
        blocked[i] = True
    return th[picked], a[picked], th, prof


def locate(series, g: CatPhan604Geometry = GEOMETRY) -> tuple[Located, Signatures, list[str]]:
    """Find modules along z, the centre and the rotation; returns (located, signatures, warnings)."""
    vol = series.volume
    spacing = series.pixel_spacing_mm
    where = series.where
    warnings: list[str] = []
    sig = _signatures_of(series)
    z = np.asarray(series.positions_mm, dtype=np.float64)
    sens = np.flatnonzero(sig.labels == LABEL_SENSITOMETRY)
    present = np.flatnonzero(sig.present)
    if sens.size == 0 and present.size:
        # a phantom cut by the field of view hides its inserts: say so rather than "not a CatPhan"
        i = int(present[present.size // 2])
        _ct.find_body(vol[i], spacing_mm=spacing, where=f"{where}: slice {i + 1}")
    if sens.size == 0:
        raise LocalizationError(f"{where}: no CatPhan sensitometry (CTP732) slice found: no slice shows the air "
                                f"and dense inserts on the 58.7 mm ring; is this a CatPhan 604?")
    mid = int(sens[len(sens) // 2])
    body = _ct.find_body(vol[mid], spacing_mm=spacing, where=f"{where}: slice {mid + 1}")
    centre = body.centre_yx_px
    bg = float(sig.median_hu[mid])
    # rotation: the air insert picks the 90-degree branch, the holes give the precise value
    angles, _, _, _ = _ring_blobs(vol[mid], spacing, centre, g, bg)
    air_vals = []
    for a in angles:
        p = _ct.position_px(centre, spacing, a, g.insert_distance_mm)
        air_vals.append(float(bilinear(vol[mid], [p[0]], [p[1]])[0]))
    air_angle = float(angles[int(np.argmin(air_vals))])
    rot_air = (air_angle - g.air_angle_deg + 180.0) % 360.0 - 180.0
    rot_holes, _ = _find_holes_rotation(vol[mid], spacing, centre, rot_air, g, bg)
    branch = rot_holes + 90.0 * round((rot_air - rot_holes) / 90.0)
    rot, _ = _find_holes_rotation(vol[mid], spacing, centre, branch, g, bg)
    # hole centres pooled over the sensitometry slices (for the 50 mm distance check)
    sens_stack = np.mean(vol[sens], axis=0)
    _, holes = _find_holes_rotation(sens_stack, spacing, centre, rot, g, bg)
    rot = rot + 90.0 * round((branch - rot) / 90.0)
    # z centre of CTP732 from the ramps: wire at u = (z - z_c)/tan(23 deg) (sign per ramp)
    k = math.tan(math.radians(g.ramp_angle_deg))
    estimates = []
    ramps = {}
    for i in sens:
        row = []
        for v, sgn in ((-g.ramp_v_mm, 1.0), (g.ramp_v_mm, -1.0)):
            u, p = _ramp_profile(vol[i], spacing, centre, rot, v, g.ramp_half_length_mm + 6.0)
            fw, uc = ramps[int(i), v] = _fwhm(u, p)
            if np.isfinite(uc) and abs(uc) < g.ramp_half_length_mm - 0.5 * fw:
                row.append(z[i] - sgn * k * uc)
        if row:
            estimates.append((i, float(np.mean(row))))
    if estimates:
        z_c = float(np.median([e for _, e in estimates]))
    else:
        z_c = float(0.5 * (z[sens[0]] + z[sens[-1]]))
        warnings.append("ramps not found on the sensitometry slices; CTP732 centre taken as the middle of its slices")
    # direction of the other modules: where the line-pair slices are
    lp = np.flatnonzero(sig.labels == LABEL_LINEPAIRS)
    if lp.size:
        direction = 1 if np.mean(z[lp]) > z_c else -1
    else:
        direction = 1
        unif = np.flatnonzero(sig.labels == LABEL_UNIFORM)
        if unif.size:
            direction = -1 if np.mean(z[unif]) > z_c else 1
        warnings.append("no line-pair (CTP714) slice found; module order inferred from the uniform slices")
    thick = float(series.slice_thickness_mm or abs(series.spacing_mm[0]) or 1.0)
    modules: dict[str, list[int]] = {}
    want = {"CTP732": LABEL_SENSITOMETRY, "CTP714": LABEL_LINEPAIRS, "CTP715": LABEL_UNIFORM,
            "CTP729": LABEL_UNIFORM}
    for name, _ in g.module_offsets_mm:
        zc = z_c + direction * g.offset(name)
        reach = max(g.half(name) - thick / 2.0, 0.0)
        idx = [int(i) for i in np.flatnonzero((np.abs(z - zc) <= reach + 1e-6) & (sig.labels == want[name]))]
        if not idx:
            near = int(np.argmin(np.abs(z - zc)))
            if abs(z[near] - zc) <= g.half(name) and sig.labels[near] == want[name]:
                idx = [near]
        if idx:
            modules[name] = idx
        else:
            warnings.append(f"{name}: not covered by this series (expected near z = {zc:.1f} mm)")
    return Located(centre, float(rot), z_c, direction, modules, holes, ramps), sig, warnings


# --------------------------------------------------------------------------- measurements


def _sensitometry(stack, spacing, centre, g: CatPhan604Geometry, bg: float, where: str):
    """Insert centres, names (by CT-number rank) and pooled ROI statistics."""
    mean_img = np.mean(stack, axis=0)
    angles, strength, _, _ = _ring_blobs(mean_img, spacing, centre, g, bg, n=len(g.materials))
    centres = []
    for a in angles:
        guess = _ct.position_px(centre, spacing, a, g.insert_distance_mm)
        r_px = g.insert_radius_mm / spacing[0]
        inner = _ct.roi_stats_mm(mean_img, spacing_mm=spacing, centres_yx_px=[guess],
                                 radius_mm=g.insert_roi_radius_mm).mean_hu[0]
        if abs(inner - bg) > 25.0:
            c = _ct.refine_disk_centre(mean_img, guess, r_px, margin_px=2.0 / spacing[0], inside_hu=inner,
                                       outside_hu=bg)
        else:
            # faint insert (acrylic is ~15 HU above the CTP732 body): refine only its angle, as the
            # midpoint of the half-contrast crossings of the ring profile across the insert
            fine = np.arange(a - 12.0, a + 12.01, 0.25)
            rs = np.arange(g.insert_distance_mm - 3.0, g.insert_distance_mm + 3.01, 0.5)
            pts = _ct.position_px(centre, spacing, fine[:, None], rs[None, :])
            pr = np.nanmean(bilinear(mean_img, pts[..., 0].ravel(), pts[..., 1].ravel()).reshape(pts.shape[:2]), 1)
            pr = np.convolve(np.sign(inner - bg) * (pr - bg), np.ones(5) / 5, mode="same")
            mid = fine.size // 2
            half = 0.5 * float(np.median(pr[mid - 8: mid + 9]))
            left = np.flatnonzero(pr[:mid] < half)
            right = np.flatnonzero(pr[mid:] < half)
            a_fine = a
            if left.size and right.size and half > 0:
                i, k = left[-1], mid + right[0]
                al = fine[i] + (half - pr[i]) / (pr[i + 1] - pr[i]) * 0.25
                ar = fine[k - 1] + (pr[k - 1] - half) / (pr[k - 1] - pr[k]) * 0.25
                if abs(0.5 * (al + ar) - a) < 6.0:
                    a_fine = 0.5 * (al + ar)
            c = tuple(_ct.position_px(centre, spacing, a_fine, g.insert_distance_mm))
        centres.append(c)
    centres = np.array(centres)
    st = _ct.roi_stats_mm(stack, spacing_mm=spacing, centres_yx_px=centres, radius_mm=g.insert_roi_radius_mm)
    order = np.argsort(st.mean_hu)
    named = {g.materials[rank].name: int(i) for rank, i in enumerate(order)}
    return named, centres, st


def _running_argmax(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running maximum of ``v`` and the (latest) index where it is attained."""
    run = np.maximum.accumulate(v)
    idx = np.where(v >= run, np.arange(v.size), 0)
    return run, np.maximum.accumulate(idx)


def _place_groups(scores: np.ndarray, widths_px: np.ndarray) -> tuple[float, np.ndarray]:
    """Monotone, non-overlapping placement of groups 0..K-1 along a line maximising Σ score."""
    k_n, n = scores.shape
    dp = scores[0].copy()
    back = np.zeros((k_n, n), dtype=np.int64)
    for k in range(1, k_n):
        gap = int(math.ceil(0.5 * (widths_px[k] + widths_px[k - 1])))
        run, arg = _running_argmax(dp)
        new = np.full(n, -np.inf)
        if gap < n:
            new[gap:] = run[:-gap] + scores[k, gap:]
            back[k, gap:] = arg[:-gap]
        dp = new
    pos = np.zeros(k_n, dtype=np.int64)
    pos[-1] = int(np.argmax(dp))
    total = float(dp[pos[-1]])
    for k in range(k_n - 1, 0, -1):
        pos[k - 1] = back[k, pos[k]]
    return total, pos


def _group_pixels(img, spacing, centre, r_bar, theta_deg, half_across, half_radial):
    """Pixels of a bar group: (across-bar coordinate mm, radial offset mm, values)."""
    dy, dx = spacing
    th = math.radians(theta_deg)
    cy = centre[0] - r_bar * math.sin(th) / dy
    cx = centre[1] + r_bar * math.cos(th) / dx
    reach = math.hypot(half_across, half_radial) + 1.0
    y0, y1, x0, x1 = box_about((cy, cx), (reach / dy, reach / dx), img.shape, margin=(0, 2))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    gx = (xx - cx) * dx
    gy = -(yy - cy) * dy                       # y up, so (cos th, sin th) is radial
    radial = gx * math.cos(th) + gy * math.sin(th)
    across = -gx * math.sin(th) + gy * math.cos(th)
    sel = (np.abs(across) <= half_across) & (np.abs(radial) <= half_radial)
    return across[sel], radial[sel], np.asarray(img[y0:y1, x0:x1], dtype=np.float64)[sel]


def _resolution(stack, spacing, centre, g: CatPhan604Geometry, bg: float):
    """Finest line-pair group whose square-wave CTF ≥ threshold, with per-group detail.

    The groups are found along the bar circle (radius = median radius of the dense bar pixels).
    Along that circle a box-minus-flanks score locates each group (its mean level is
    bg + duty·C whatever the resolution), in order of frequency, by dynamic programming over
    monotone non-overlapping placements (both senses tried, starting in the widest empty arc).
    For each group the pixels inside it are projected onto the across-bar axis and a sinusoid of
    the group's period fitted by least squares — no interpolation, so tilted bars are measured
    beyond the pixel Nyquist frequency: CTF ≈ 2 a₁ / C (the fundamental of the square wave;
    the 3rd harmonic is negligible near CTF = 0.1, Coltman 1954).  Patterns above the pixel
    Nyquist frequency never count (they cannot show their own modulation, only an alias).
    C comes from the 1 lp/cm
    group: the window mean over the whole group equals bg + C · (bar area / window area).
    """
    from scipy.ndimage import uniform_filter1d
    img = np.mean(stack, axis=0)
    dy, dx = spacing
    ny, nx = img.shape
    # the bar band lies within lp_radius_range_mm[1] of the centre: its bounding box suffices
    reach = g.lp_radius_range_mm[1]
    y0, y1, x0, x1 = box_about(centre, (reach / dy, reach / dx), (ny, nx), margin=(1, 2))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    r = np.hypot((yy - centre[0]) * dy, (xx - centre[1]) * dx)
    band = (r > g.lp_radius_range_mm[0]) & (r < g.lp_radius_range_mm[1])
    box = img[y0:y1, x0:x1]
    dense = band & (box > bg + 300.0)
    if dense.sum() < 10:
        return None
    r_bar = float(np.median(r[dense]))
    c0 = float(np.percentile(box[dense], 95) - bg)
    step = 0.05
    circ = 2 * math.pi * r_bar
    n = int(circ / step)
    th_all = np.arange(n) * (360.0 / n)
    rr = np.arange(r_bar - 2.0, r_bar + 2.01, 0.5)
    pts = _ct.position_px(centre, spacing, th_all[:, None], rr[None, :])
    prof = np.nanmean(bilinear(img, pts[..., 0].ravel(), pts[..., 1].ravel()).reshape(pts.shape[:2]), axis=1) - bg
    # start the line in the middle of the widest empty arc so no group straddles the ends
    empty = uniform_filter1d(np.abs(prof), int(2.0 / step), mode="wrap") < 0.1 * c0
    # longest run of empty samples around the circle (at most n long; the first one found
    # when scanning the circle twice): run[i] = empty samples ending at i
    twice = np.concatenate([empty, empty])
    i2 = np.arange(2 * n)
    run = i2 - np.maximum.accumulate(np.where(twice, -1, i2))
    best_len = int(run[run <= n].max())
    best_i = int(np.argmax((run == best_len) & (run <= n)))
    best_mid = best_i - best_len // 2
    start = best_mid % n
    order = (start + np.arange(n)) % n
    level = prof[order] / (0.5 * c0)
    th = th_all[order]
    csum = np.concatenate([[0.0], np.cumsum(level)])
    freqs = np.array(g.lp_lpcm, dtype=float)
    widths = (g.lp_bars - 0.5) * 10.0 / freqs
    F = int(round(1.0 / step))                 # flank length
    M = int(round(1.0 / step))                 # flank offset from the group edge (clear of the edge blur)
    idx = np.arange(n)
    scores = np.full((freqs.size, n), -5.0)
    for k, w in enumerate(widths):
        L = max(int(round(w / step)), 1)
        st = idx - L // 2
        ok = (st - F - M >= 0) & (st + L + F + M <= n)
        s0 = st[ok]
        inside = (csum[s0 + L] - csum[s0]) / L
        left = (csum[s0 - M] - csum[s0 - M - F]) / F
        right = (csum[s0 + L + M + F] - csum[s0 + L + M]) / F
        scores[k, ok] = np.minimum(inside, 1.2) - 0.5 * (np.abs(left) + np.abs(right))
    wpx = widths / step
    t1, p1 = _place_groups(scores, wpx)
    t2, p2 = _place_groups(scores[:, ::-1], wpx)
    pos = p1 if t1 >= t2 else n - 1 - p2
    # bar contrast from the 1 lp/cm group (whole group inside the window, 1.5 mm margins)
    p = 10.0 / freqs[0]
    u, _, v = _group_pixels(img, spacing, centre, r_bar, th[pos[0]], widths[0] / 2 + 1.5, 2.5)
    window = widths[0] + 3.0
    contrast = float((np.mean(v) - bg) * window / (g.lp_bars * p / 2)) if v.size else c0
    groups = []
    resolved = 0.0
    nyquist_lpcm = 10.0 / (2.0 * max(dy, dx))
    for k, f in enumerate(freqs):
        if f > nyquist_lpcm:
            break                   # above the pixel Nyquist frequency a pattern cannot show its own modulation
        period = 10.0 / f
        u, _, v = _group_pixels(img, spacing, centre, r_bar, th[pos[k]], 1.5 * period, 2.5)
        if v.size < 8:
            break
        a = np.stack([np.cos(2 * np.pi * u / period), np.sin(2 * np.pi * u / period), np.ones_like(u)], 1)
        coef, *_ = np.linalg.lstsq(a, v, rcond=None)
        ctf = 2.0 * math.hypot(coef[0], coef[1]) / contrast
        groups.append({"lpcm": float(f), "angle_deg": float(th[pos[k]]), "ctf": ctf})
        if ctf >= g.ctf_threshold:
            resolved = float(f)
        else:
            break
    return {"resolution_lpcm": resolved, "bar_radius_mm": r_bar, "contrast_hu": contrast, "groups": groups}


def _low_contrast(stack, spacing, centre, g: CatPhan604Geometry):
    """CTP715 supra-slice targets counted visible by a Rose-type CNR rule.

    Targets (Ø 15 … 2 mm, three contrast groups) lie on the nominal 50 mm circle.  The Ø 15 mm
    target of each group is the strongest disk-mean bump on that circle (groups ranked by its
    contrast: 1 %, 0.5 %, 0.3 %); the others follow along the circle in decreasing size, each
    searched within a 1–8 mm edge gap after the previous one.  A target is visible when
    ``CNR = (disk mean − background) / SD(disk means in uniform background) ≥ rose_k`` (Rose
    1948: k ≈ 4 for certain detection); each group is counted up to its first invisible target.
    The SD of disk means is measured at the same diameter on two inner rings, so correlated
    noise is accounted for.
    """
    img = np.mean(stack, axis=0)
    px = 0.5 * (spacing[0] + spacing[1])
    # background annulus 20-40 mm: only its bounding box is needed
    y0, y1, x0, x1 = box_about(centre, (40.0 / spacing[0], 40.0 / spacing[1]), img.shape, margin=(1, 2))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    r2 = ((yy - centre[0]) * spacing[0]) ** 2 + ((xx - centre[1]) * spacing[1]) ** 2
    bg = float(np.median(img[y0:y1, x0:x1][(r2 > 20.0 ** 2) & (r2 < 40.0 ** 2)]))
    step = 0.5
    th = np.arange(0.0, 360.0, step)
    ring = _ct.position_px(centre, spacing, th, g.lc_radius_mm)

    def disk_means(d_mm, where):
        m, _, n = circle_stats(img, where, 0.5 * d_mm / px)
        return m[0] - bg

    def noise_sd(d_mm):
        pts = []
        for rr in (18.0, 32.0):
            k = max(int(2 * math.pi * rr / (d_mm + 2.0)), 6)
            pts.append(_ct.position_px(centre, spacing, np.arange(k) * 360.0 / k, rr))
        vals = disk_means(d_mm, np.vstack(pts))
        return float(np.std(vals, ddof=1))

    from iqa.kernels.roi import circle_stats
    p15 = disk_means(g.lc_diameters_mm[0], ring)
    free = np.ones(th.size, dtype=bool)             # circle not yet claimed by a found group
    groups = []
    total = 0
    deg_per_mm = 180.0 / (math.pi * g.lc_radius_mm)
    sds = {d: noise_sd(d) for d in g.lc_diameters_mm}
    for rank in range(3):
        if not free.any():
            break
        i0 = int(np.argmax(np.where(free, p15, -np.inf)))
        a0 = th[i0]
        cnr0 = p15[i0] / sds[g.lc_diameters_mm[0]]
        found = [(g.lc_diameters_mm[0], float(a0), float(cnr0))]
        # direction of decreasing size: the side with the stronger next target
        best_dir, best_val = 1, -np.inf
        for sgn in (1, -1):
            d1 = g.lc_diameters_mm[1]
            cand = a0 + sgn * deg_per_mm * (0.5 * (g.lc_diameters_mm[0] + d1) + np.arange(1.0, 8.01, 0.25))
            v = disk_means(d1, _ct.position_px(centre, spacing, cand, g.lc_radius_mm)).max()
            if v > best_val:
                best_dir, best_val = sgn, v
        visible = int(cnr0 >= g.rose_k)
        prev_a, prev_d = a0, g.lc_diameters_mm[0]
        counting = visible == 1
        for d in g.lc_diameters_mm[1:]:
            cand = prev_a + best_dir * deg_per_mm * (0.5 * (prev_d + d) + np.arange(1.0, 8.01, 0.25))
            vals = disk_means(d, _ct.position_px(centre, spacing, cand, g.lc_radius_mm))
            j = int(np.argmax(vals))
            cnr = float(vals[j] / sds[d])
            found.append((d, float(cand[j]), cnr))
            if counting and cnr >= g.rose_k:
                visible += 1
            else:
                counting = False
            prev_a, prev_d = float(cand[j]), d
        # claim the group's arc (plus a target radius either side) before looking for the next one
        lo_a = a0 - best_dir * deg_per_mm * (0.5 * g.lc_diameters_mm[0] + 8.0)
        hi_a = prev_a + best_dir * deg_per_mm * (0.5 * prev_d + 8.0)
        span = sorted((lo_a, hi_a))
        rel = (th - span[0]) % 360.0
        free &= ~(rel <= (span[1] - span[0]))
        total += visible
        groups.append({"rank": rank, "contrast_hu": float(p15[i0]), "visible": visible,
                       "targets": [{"diameter_mm": d, "angle_deg": a % 360.0, "cnr": c} for d, a, c in found]})
    return {"lcd_visible": total, "groups": groups, "background_hu": bg}


def analyze(series) -> PhantomAnalysis:
    """Measure a CatPhan 604 series (definitions in the module docstring).

    Raises
    ------
    InputError
        Not a CT series.
    LocalizationError
        No sensitometry module, or the phantom cut by the field of view.
    """
    if series.modality != MODALITY:
        raise InputError(f"{series.where}: {series.modality} series given, but the CatPhan 604 is a CT phantom")
    g = GEOMETRY
    where = series.where
    spacing = series.pixel_spacing_mm
    _ct.isotropic_pixel_mm(spacing, where=where)
    vol = series.volume
    loc, sig, warnings = locate(series, g)
    out = PhantomAnalysis(NAME)
    out.warnings.extend(warnings)
    centre = loc.centre_yx_px

    # ---- CTP732: inserts, linearity, MTF, slice thickness
    sens = loc.modules.get("CTP732", [])
    if not sens:   # sensitometry-like slices exist, but none where the module geometry puts CTP732
        raise LocalizationError(f"{where}: no slice lies within the CTP732 sensitometry module; "
                                f"is this a CatPhan 604 (try --phantom auto)?")
    stack = vol[sens]
    bg = float(np.nanmedian(sig.median_hu[sens]))
    named, centres, st = _sensitometry(stack, spacing, centre, g, bg, where)
    nominal, measured = [], []
    for m in g.materials:
        i = named[m.name]
        out.add(f"hu_{m.name}", float(st.mean_hu[i]), "HU")
        nominal.append(m.nominal_hu)
        measured.append(float(st.mean_hu[i]))
    lin = _ct.linearity(measured, nominal)
    out.add("hu_linearity_r2", lin.r2, "1")
    out.details["linearity"] = {"slope": lin.slope, "intercept_hu": lin.intercept, "r2": lin.r2}
    out.details["inserts"] = {m.name: {"row": float(centres[named[m.name], 0]), "col": float(centres[named[m.name], 1]),
                                       "hu": float(st.mean_hu[named[m.name]]),
                                       "sd_hu": float(st.noise_hu[named[m.name]])} for m in g.materials}
    tef = centres[named["teflon"]]
    mtf = _ct.mtf_circular_edge(stack, spacing_mm=spacing, centre_yx_px=tef, radius_mm=g.insert_radius_mm,
                                window_mm=0.8 * g.insert_radius_mm, where=where)
    out.add("mtf50_lpcm", mtf.mtf50_lpcm, "lp/cm")
    out.add("mtf10_lpcm", mtf.mtf10_lpcm, "lp/cm")
    out.curves["mtf"] = {"f_lpcm": mtf.f_lpcm.tolist(), "mtf": mtf.mtf.tolist()}
    # slice thickness: every CTP732 slice on which a ramp's plateau lies wholly on its wire
    k = math.tan(math.radians(g.ramp_angle_deg))
    widths = []
    for zi in sens:
        for v in (-g.ramp_v_mm, g.ramp_v_mm):
            if (zi, v) in loc.ramps:            # measured while locating (same centre and rotation)
                fw, uc = loc.ramps[zi, v]
            else:
                u, p = _ramp_profile(vol[zi], spacing, centre, loc.rotation_deg, v, g.ramp_half_length_mm + 6.0)
                fw, uc = _fwhm(u, p)
            if np.isfinite(fw) and abs(uc) + fw / 2 < g.ramp_half_length_mm - 1.0:
                widths.append(fw * k)
    if widths:
        out.add("slice_thickness_mm", float(np.mean(widths)), "mm")
        out.details["slice_thickness_profiles"] = len(widths)
    else:
        out.warnings.append("slice_thickness_mm: the ramp wires were not found fully on any CTP732 slice")
    # geometry: the four Ø 3 mm holes on a 50 mm square
    holes = np.array(loc.holes)
    if holes.shape == (4, 2):
        hy, hx = holes[:, 0] * spacing[0], holes[:, 1] * spacing[1]
        sides = [math.hypot(hy[i] - hy[(i + 1) % 4], hx[i] - hx[(i + 1) % 4]) for i in range(4)]
        out.add("distance_error_mm", float(np.mean(sides) - 2 * g.holes_half_side_mm), "mm")
        out.details["hole_sides_mm"] = sides

    # ---- CTP729: uniformity, noise, NPS
    uni = loc.modules.get("CTP729", [])
    if uni:
        ustack = vol[uni]
        body = _ct.find_body(vol[uni[len(uni) // 2]], spacing_mm=spacing, where=where)
        ucen = body.centre_yx_px
        radius = body.radius_mm
        roi_r = 0.5 * 0.1128 * 2 * radius
        rois = np.vstack([[ucen], _ct.position_px(ucen, spacing, np.array([90.0, 0.0, 270.0, 180.0]), 0.75 * radius)])
        ust = _ct.roi_stats_mm(ustack, spacing_mm=spacing, centres_yx_px=rois, radius_mm=roi_r)
        out.add("water_hu", float(ust.mean_hu[0]), "HU")
        out.add("noise_hu", float(ust.noise_hu[0]), "HU")
        out.add("uniformity_hu", float(np.max(np.abs(ust.mean_hu[1:] - ust.mean_hu[0]))), "HU")
        nps_c = _ct.nps_grid_px(ucen, spacing, size_mm=g.nps_roi_mm, within_mm=0.85 * radius)
        if len(nps_c):
            nps = _ct.nps_from_rois(ustack, spacing_mm=spacing, centres_yx_px=nps_c, size_mm=g.nps_roi_mm, where=where)
            out.add("nps_peak_lpcm", nps.nps_peak_lpcm, "lp/cm")
            out.add("nps_mean_lpcm", nps.nps_mean_lpcm, "lp/cm")
            out.curves["nps"] = {"f_lpcm": nps.f_lpcm.tolist(), "nps_hu2mm2": nps.nps.tolist()}

    # ---- CTP714: line pairs
    lp = loc.modules.get("CTP714", [])
    if lp:
        lpbg = float(np.nanmedian(sig.median_hu[lp]))
        res = _resolution(vol[lp], spacing, centre, g, lpbg)
        if res is None:
            out.warnings.append("CTP714: no bar pattern found")
        else:
            out.add("resolution_lpcm", res["resolution_lpcm"], "lp/cm")
            out.details["line_pairs"] = res

    # ---- CTP715: low contrast
    lc = loc.modules.get("CTP715", [])
    if lc:
        lcd = _low_contrast(vol[lc], spacing, centre, g)
        out.add("lcd_visible", float(lcd["lcd_visible"]), "targets")
        out.details["low_contrast"] = lcd

    out.details.update({
        "centre_px": {"row": float(centre[0]), "col": float(centre[1])},
        "rotation_deg": loc.rotation_deg,
        "ctp732_z_mm": loc.z_c_mm,
        "module_direction": loc.direction,
        "modules": {k: [int(i) + 1 for i in v] for k, v in loc.modules.items()},
    })
    return out
