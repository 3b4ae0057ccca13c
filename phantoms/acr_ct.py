"""ACR CT accreditation phantom (Gammex 464): localisation and the full measurement pipeline.

Layout and metric definitions: docs/conventions.md ("ACR CT 464"), after the ACR CT QC
Manual (2017) and the CTAP Phantom Testing Instructions (2017):

* module 1 — CT number accuracy of five Ø 25 mm inserts (ROI Ø 15 mm), linearity against the
  nominal CT numbers, two slice-width wire ramps (tan θ = 0.5), TG-233 circular-edge MTF from
  the bone insert;
* module 2 — low-contrast CNR of the Ø 25 mm rod against the background at the same radius;
* module 3 — water CT number uniformity (centre and four peripheral 400 mm² ROIs), noise,
  NPS (TG-233), distance between the two BBs;
* module 4 — eight bar patterns 4–12 lp/cm, square-wave contrast transfer (Coltman 1954).

Modules are found along z by content, the centre by an edge-circle fit and the rotation
from the module-1 inserts (``_acr_ct_locate``); nothing depends on slice numbers or the
series description.  A module the series does not cover is reported in ``warnings`` and the
rest is still measured.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from iqa.errors import InputError, LocalizationError
from iqa.kernels.roi import circle_stats
from iqa.phantoms import _acr_ct_locate as loc
from iqa.phantoms import _acr_ct_measure as meas
from iqa.phantoms._ct import linearity, pooled
from iqa.phantoms._memo import memo
from iqa.result import PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "acr-ct-464"
MODALITY = "CT"


# --------------------------------------------------------------------------- geometry (data)

@dataclass(frozen=True, slots=True)
class Insert:
    material: str
    angle_deg: float
    nominal_hu: float

    @property
    def metric(self) -> str:
        return f"hu_{self.material}"


@dataclass(frozen=True, slots=True)
class BarPattern:
    frequency_lpcm: float
    angle_deg: float


@dataclass(frozen=True, slots=True)
class Geometry:
    diameter_mm: float = 200.0
    module_length_mm: float = 40.0
    # module 1
    inserts: tuple[Insert, ...] = (
        Insert("water", 90.0, 0.0), Insert("bone", 30.0, 955.0), Insert("polyethylene", 150.0, -95.0),
        Insert("air", 210.0, -1000.0), Insert("acrylic", 330.0, 120.0))
    insert_distance_mm: float = 60.0
    insert_radius_mm: float = 12.5
    insert_roi_radius_mm: float = 7.5
    ramp_y_mm: tuple[float, float] = (80.0, -80.0)
    ramp_half_length_mm: float = 30.0
    ramp_tan: float = 0.5
    module1_background_hu: float = 0.0
    # module 2
    cnr_rod_angle_deg: float = 90.0
    cnr_background_angle_deg: float = 270.0
    cnr_distance_mm: float = 60.0
    cnr_roi_radius_mm: float = 7.5
    module2_background_hu: float = 90.0
    # module 3
    uniformity_roi_radius_mm: float = 0.1128 * 200.0 / 2      # 400 mm²
    uniformity_distance_mm: float = 75.0
    uniformity_angles_deg: tuple[float, ...] = (90.0, 0.0, 270.0, 180.0)   # image axes
    bb_distance_mm: float = 100.0
    nps_roi_mm: float = 40.0                  # square ROIs clear of the BBs
    nps_distance_mm: float = 45.0
    nps_angles_deg: tuple[float, ...] = (45.0, 135.0, 225.0, 315.0)
    # module 4
    bars: tuple[BarPattern, ...] = tuple(BarPattern(f, a) for f, a in (
        (4, 90), (5, 45), (6, 0), (7, 315), (8, 270), (9, 225), (10, 180), (12, 135)))
    bar_distance_mm: float = 55.0
    bar_contrast_hu: float = 1000.0
    ctf_threshold: float = 0.10


GEOMETRY = Geometry()
#: order of the metrics in results (as a physicist reads the ACR report)
METRIC_ORDER = ("water_hu", "noise_hu", "uniformity_hu", "hu_water", "hu_air", "hu_polyethylene", "hu_acrylic",
                "hu_bone", "hu_linearity_slope", "hu_linearity_r2", "cnr", "slice_thickness_mm", "mtf50_lpcm",
                "mtf10_lpcm", "resolution_lpcm", "nps_peak_lpcm", "nps_mean_lpcm", "distance_error_mm")
#: slices used for the wire ramps (nearest the module-1 centre) and for the NPS
MAX_RAMP_SLICES = 4
MAX_NPS_SLICES = 6
MTF_INSERT = "bone"


# --------------------------------------------------------------------------- identify

def _signatures(series) -> loc.SliceSignature:
    """The series' slice signatures, computed once for ``identify`` and ``analyze`` together."""
    vol, sp, d = series.volume, series.pixel_spacing_mm, GEOMETRY.diameter_mm
    return memo(vol, ("acr_ct.slice_signatures", tuple(map(float, sp)), d),
                    lambda: loc.slice_signatures(vol, sp, diameter_mm=d))


def identify(series) -> float:
    """Confidence (0..1) that the series shows an ACR CT 464 phantom, from its pixels only.

    A Ø 200 mm disk is required; the module-1 insert pattern (air, bone, polyethylene and
    acrylic at 60 mm, correlated with the nominal layout over ±12° of rotation) is decisive;
    a +90 HU low-contrast module or bar blocks next to uniform water count for less.
    """
    if getattr(series, "modality", "") != MODALITY or series.volume.ndim != 3:
        return 0.0
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    sig = _signatures(series)
    disk = math.pi * (g.diameter_mm / 2) ** 2
    present = (sig.area_mm2 > 0.85 * disk) & (sig.area_mm2 < 1.15 * disk)
    if not present.any():
        return 0.0
    labels = set(sig.labels[present].tolist())
    score = 0.1
    ones = np.flatnonzero(present & (sig.labels == 1))
    if ones.size:
        z = ones[np.argmax(sig.low_fraction[ones] + sig.high_fraction[ones])]
        centre = (float(sig.cy_px[z]), float(sig.cx_px[z]))
        _, cc = loc.coarse_rotation(series.volume[z], centre, sp,
                                    [(i.angle_deg, i.nominal_hu) for i in g.inserts],
                                    distance_mm=g.insert_distance_mm, radius_mm=g.insert_radius_mm,
                                    background_hu=g.module1_background_hu)
        if cc > 0.7:
            return float(min(0.99, 0.6 + 0.4 * cc))
        score = max(score, 0.2)
    pos = np.asarray(series.positions_mm, dtype=np.float64)
    twos = pos[present & (sig.labels == 2)]
    spacing = float(np.median(np.diff(np.sort(pos)))) if pos.size > 1 else 0.0
    thick = float(series.slice_thickness_mm or spacing)
    # the +90 HU module is one 40 mm module; a longer +90..+100 HU body (CatPhan) is not it
    one_module = twos.size > 0 and np.ptp(twos) <= g.module_length_mm + thick + spacing
    # and an ACR series is nearly all recognisable modules (partial-volume slices aside)
    unclear = float(np.mean(sig.labels[present] == -1))
    if 2 in labels and (labels & {3, 4}) and one_module and unclear < 0.25:
        score = max(score, 0.7)
    elif 4 in labels and 3 in labels and unclear < 0.25:
        score = max(score, 0.45)
    return score


# --------------------------------------------------------------------------- analyze

@dataclass(frozen=True, slots=True)
class ModuleSlices:
    module: int
    indices: tuple[int, ...]      # slices used for measurement
    members: tuple[int, ...]      # every slice showing the module
    z_centre_mm: float            # fitted module centre


def analyze(series) -> PhantomAnalysis:
    """Measure every ACR CT 464 metric the series covers (docs/conventions.md)."""
    g = GEOMETRY
    _check(series)
    out = PhantomAnalysis(NAME)
    vol = series.volume
    sp = series.pixel_spacing_mm
    pos = np.asarray(series.positions_mm, dtype=np.float64)
    sig = _signatures(series)
    disk = math.pi * (g.diameter_mm / 2) ** 2
    if not np.any(sig.area_mm2 > 0.4 * disk):
        raise LocalizationError(f"{series.where}: no Ø {g.diameter_mm:.0f} mm phantom found in any slice; "
                                f"is this an ACR CT 464 series?")
    zm = loc.fit_z_model(pos, sig.labels, module_length_mm=g.module_length_mm)
    if zm is None:
        raise LocalizationError(f"{series.where}: none of the {len(pos)} slices shows an ACR CT 464 module "
                                f"(inserts, +90 HU low-contrast, uniform or bar module); check the phantom "
                                f"and the reconstruction")
    thickness = float(series.slice_thickness_mm or series.spacing_mm[0] or 0.0)
    zm, faces = loc.refine_z_model(pos, sig, zm, module_length_mm=g.module_length_mm, diameter_mm=g.diameter_mm,
                                   thickness_mm=thickness)
    mods = _select_slices(pos, sig.labels, zm, thickness, out)
    if not mods:
        raise LocalizationError(f"{series.where}: no slice could be assigned to an ACR CT 464 module")
    details = out.details
    details["modules"] = {str(k): {"z_mm": m.z_centre_mm, "slice_z_mm": [float(pos[i]) for i in m.indices],
                                   "slices": list(m.indices)} for k, m in mods.items()}
    details["module_direction"] = zm.direction
    details["module_faces_z_mm"] = faces
    for k in (1, 2, 3, 4):
        if k not in mods:
            out.warnings.append(f"module {k} not covered by the series (z {pos.min():.1f}..{pos.max():.1f} mm); "
                                f"its metrics are not reported")

    # per-module mean images and centres
    images = {k: _mean_image(vol, m.indices) for k, m in mods.items()}
    centres = {}
    for k, m in mods.items():
        guess = (float(np.nanmean(sig.cy_px[list(m.indices)])), float(np.nanmean(sig.cx_px[list(m.indices)])))
        inside = g.module2_background_hu if k == 2 else g.module1_background_hu
        circ = loc.fit_outline(images[k], sp, guess, radius_mm=g.diameter_mm / 2, inside_hu=inside)
        _check_fov(series, images[k].shape, sp, circ, guess, k, pos[m.indices[0]])
        centres[k] = (circ.cy_px, circ.cx_px)
        details["modules"][str(k)]["centre_px"] = {"x": circ.cx_px, "y": circ.cy_px}
        details["modules"][str(k)]["diameter_mm"] = 2 * circ.radius_mm
    ref = 1 if 1 in mods else 3 if 3 in mods else min(mods)
    cy, cx = centres[ref]
    ny, nx = vol.shape[1:]
    details["centre_px"] = {"x": cx, "y": cy}
    details["centre_mm"] = {"x": (cx - (nx - 1) / 2) * sp[1], "y": (cy - (ny - 1) / 2) * sp[0]}
    details["centre_patient_mm"] = _patient_xyz(series, (cy, cx), mods[ref].indices[0])

    # rotation
    rot, how = _rotation(images, centres, sp, mods, out)
    details["rotation_deg"] = rot
    details["rotation_from"] = how

    if 1 in mods:
        _module1(series, out, mods[1], images[1], centres[1], rot)
    if 2 in mods:
        _module2(series, out, mods[2], centres[2], rot)
    if 3 in mods:
        _module3(series, out, mods[3], centres[3], rot)
    if 4 in mods:
        _module4(out, images[4], sp, centres[4], rot)
    if "water_hu" not in out.measurements and "hu_water" in out.measurements:
        out.add("water_hu", out.measurements["hu_water"].value, "HU")
        out.warnings.append("water_hu: module 3 not covered; taken from the module-1 water insert")
    order = {name: i for i, name in enumerate(METRIC_ORDER)}
    out.measurements = dict(sorted(out.measurements.items(), key=lambda kv: order.get(kv[0], len(order))))
    if not out.measurements:
        raise LocalizationError(f"{series.where}: ACR CT 464 modules found ({', '.join(map(str, mods))}) "
                                f"but nothing could be measured")
    return out


def _mean_image(vol: np.ndarray, indices) -> np.ndarray:
    """Float64 mean of the slices ``indices``: ``vol[indices].mean(axis=0, dtype=float64)``
    (the same sequential sum, bit for bit) without the copy of the selected slices."""
    acc = vol[indices[0]].astype(np.float64)
    for i in indices[1:]:
        acc += vol[i]
    acc /= len(indices)
    return acc


def _check(series) -> None:
    if getattr(series, "modality", None) != MODALITY:
        raise InputError(f"{series.where}: {series.modality} series given; the ACR CT 464 analysis needs CT")
    if series.volume.ndim != 3 or min(series.volume.shape[1:]) < 64:
        raise InputError(f"{series.where}: image matrix {series.volume.shape[1:]} is too small for ACR CT 464")
    dy, dx = series.pixel_spacing_mm
    if not (dy > 0 and dx > 0) or abs(dy - dx) > 0.02 * max(dy, dx):
        raise InputError(f"{series.where}: pixel spacing {dy:.3f} x {dx:.3f} mm; square pixels are required")


def _select_slices(pos, labels, zm: loc.ZModel, thickness: float, out) -> dict[int, ModuleSlices]:
    """Slices of each module clear of its neighbours: 0.75 × thickness + 2 mm from each face
    (beyond the slice profile and its tails), plus the uncertainty of the faces."""
    g = GEOMETRY
    pred = zm.module_of(pos, g.module_length_mm)
    mods = {}
    margin = 0.75 * thickness + 2.0 + zm.uncertainty_mm
    for k in (1, 2, 3, 4):
        members = np.flatnonzero((pred == k) & (labels == k))
        if members.size == 0:
            continue
        zc = zm.centre_of(k, g.module_length_mm)
        d = np.abs(pos[members] - zc)
        use = members[d <= g.module_length_mm / 2 - margin]
        if use.size == 0:
            # no slice clear of the neighbours: the member nearest the middle of the run
            use = members[[int(np.argmin(np.abs(pos[members] - np.median(pos[members]))))]]
            if zm.uncertainty_mm > g.module_length_mm / 4:
                why = "the series shows too little of the phantom to place the module faces"
            else:
                why = f"no slice lies {margin:.1f} mm clear of the neighbouring modules"
            out.warnings.append(f"module {k}: {why}; using z = {pos[use[0]]:.1f} mm "
                                f"(values may carry partial-volume bias)")
        mods[k] = ModuleSlices(k, tuple(int(i) for i in use), tuple(int(i) for i in members), float(zc))
    return mods


def _check_fov(series, shape, sp, circ: loc.Circle, guess, module: int, z_mm: float) -> None:
    g = GEOMETRY
    ny, nx = shape
    cy, cx = (circ.cy_px, circ.cx_px) if math.isfinite(circ.cy_px) else guess
    r = g.diameter_mm / 2
    over = {"left": r - cx * sp[1], "right": r - (nx - 1 - cx) * sp[1],
            "top": r - cy * sp[0], "bottom": r - (ny - 1 - cy) * sp[0]}
    side, excess = max(over.items(), key=lambda kv: kv[1])
    if excess > -0.5:
        raise LocalizationError(
            f"{series.where}: the phantom is cut by the field of view at the {side} (module {module}, z = "
            f"{z_mm:.1f} mm: its Ø {g.diameter_mm:.0f} mm edge reaches {max(excess, 0):.1f} mm beyond the image); "
            f"centre the phantom or reconstruct with a larger field of view")
    if not math.isfinite(circ.cy_px):
        raise LocalizationError(f"{series.where}: the phantom outline could not be found in module {module} "
                                f"(z = {z_mm:.1f} mm)")


def _patient_xyz(series, centre_yx, index) -> list[float]:
    o = np.asarray(series.origin_mm[index], dtype=np.float64)
    ori = np.asarray(series.orientation, dtype=np.float64)
    row, col = ori[:3], ori[3:]
    dy, dx = series.pixel_spacing_mm
    return (o + centre_yx[1] * dx * row + centre_yx[0] * dy * col).tolist()


def _rotation(images, centres, sp, mods, out) -> tuple[float, str]:
    """Rotation from the module-1 inserts; else from the module-3 BBs; else 0 with a warning."""
    g = GEOMETRY
    if 1 in mods:
        img, c = images[1], centres[1]
        coarse, cc = loc.coarse_rotation(img, c, sp, [(i.angle_deg, i.nominal_hu) for i in g.inserts],
                                         distance_mm=g.insert_distance_mm, radius_mm=g.insert_radius_mm,
                                         background_hu=g.module1_background_hu)
        offsets, found = [], {}
        for ins in g.inserts:
            contrast = ins.nominal_hu - g.module1_background_hu
            if abs(contrast) < 50:
                continue
            guess = loc.point_px(c, sp, ins.angle_deg + coarse, g.insert_distance_mm)
            p = loc.blob_centroid(img, guess, sp, window_mm=g.insert_radius_mm + 5.0, sign=math.copysign(1, contrast),
                                  background_hu=g.module1_background_hu)
            if not math.isfinite(p[0]):
                continue
            found[ins.material] = p
            offsets.append(loc.wrap_deg(loc.angle_of(c, sp, p) - ins.angle_deg))
        if len(offsets) >= 2 and cc > 0.5:
            rot = loc.circular_mean_deg(offsets)
            out.details["insert_centres_px"] = {k: {"x": v[1], "y": v[0]} for k, v in found.items()}
            out.details["insert_angle_offsets_deg"] = offsets
            return rot, "module 1 inserts"
        out.warnings.append(f"module 1 insert pattern unclear (correlation {cc:.2f}); rotation from other modules")
    if 3 in mods:
        # the two BBs lie on the phantom's x axis
        st = images[3][None]
        bbs = meas.find_bbs(st, sp, centres[3], 0.0, distance_mm=g.bb_distance_mm, background_hu=0.0)
        if bbs is not None:
            (y0, x0), (y1, x1) = bbs.positions_yx_px
            rot = math.degrees(math.atan2(-(y0 - y1) * sp[0], (x0 - x1) * sp[1]))
            return loc.wrap_deg(rot), "module 3 BBs"
    if 4 in mods:
        rot = _rotation_from_bars(images[4], centres[4], sp)
        if rot is not None:
            return rot, "module 4 bar patterns"
    out.warnings.append("phantom rotation could not be measured (no module 1 inserts, BBs or bars); assumed 0°")
    return 0.0, "assumed"


def _rotation_from_bars(image, centre, sp, search_deg: float = 8.0, step_deg: float = 0.5) -> float | None:
    """Rotation maximising the summed square-wave response of the three coarsest bar patterns
    (bars smear out when the folding direction is off), refined by a parabola."""
    g = GEOMETRY
    coarse = sorted(g.bars, key=lambda b: b.frequency_lpcm)[:3]
    rots = np.arange(-search_deg, search_deg + step_deg / 2, step_deg)
    score = np.array([sum(meas.bar_ctf(image, sp, centre, angle_deg=b.angle_deg + r, distance_mm=g.bar_distance_mm,
                                       frequency_lpcm=b.frequency_lpcm, contrast_hu=g.bar_contrast_hu,
                                       harmonics=1).ctf for b in coarse) for r in rots])
    if not np.all(np.isfinite(score)) or score.max() < 3 * g.ctf_threshold:
        return None
    i = int(np.argmax(score))
    if 0 < i < rots.size - 1:
        a, b, c = score[i - 1], score[i], score[i + 1]
        den = a - 2 * b + c
        if den < 0:
            return float(rots[i] + 0.5 * (a - c) / den * step_deg)
    return float(rots[i])


def _module1(series, out, m: ModuleSlices, image, centre, rot) -> None:
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    px = 0.5 * (sp[0] + sp[1])
    stack = series.volume[list(m.indices)]
    cents = [loc.point_px(centre, sp, i.angle_deg + rot, g.insert_distance_mm) for i in g.inserts]
    mean, sd, n = circle_stats(stack, cents, g.insert_roi_radius_mm / px)
    mu, noise = pooled(mean, sd)
    measured = {}
    for ins, v in zip(g.inserts, mu):
        out.add(ins.metric, float(v), "HU")
        measured[ins.material] = float(v)
    nominal = np.array([i.nominal_hu for i in g.inserts])
    meas_v = np.array([measured[i.material] for i in g.inserts])
    lin = linearity(meas_v, nominal)
    out.add("hu_linearity_slope", lin.slope, "1")
    out.add("hu_linearity_r2", lin.r2, "1")
    out.details["linearity"] = {"slope": lin.slope, "intercept_hu": lin.intercept, "r2": lin.r2,
                                "nominal_hu": nominal.tolist(), "measured_hu": meas_v.tolist()}
    out.details["insert_sd_hu"] = {i.material: float(s) for i, s in zip(g.inserts, noise)}
    _mtf(series, out, stack, centre, rot)
    _slice_width(series, out, m, centre, rot)


def _mtf(series, out, stack, centre, rot) -> None:
    """TG-233 circular-edge TTF of the bone insert (docs/conventions.md)."""
    from iqa.phantoms import _ct
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    ins = next(i for i in g.inserts if i.material == MTF_INSERT)
    guess = out.details.get("insert_centres_px", {}).get(MTF_INSERT)
    c = (guess["y"], guess["x"]) if guess else loc.point_px(centre, sp, ins.angle_deg + rot, g.insert_distance_mm)
    try:
        res = _ct.mtf_circular_edge(stack, spacing_mm=sp, centre_yx_px=c, radius_mm=g.insert_radius_mm,
                                    where=series.where)
    except LocalizationError as exc:          # the other module-1 metrics still stand
        out.warnings.append(f"mtf50_lpcm, mtf10_lpcm: not measured ({exc})")
        return
    out.details["mtf_edge_centre_px"] = {"x": float(res.centre_yx_px[:, 1].mean()),
                                         "y": float(res.centre_yx_px[:, 0].mean())}
    out.add("mtf50_lpcm", res.mtf50_lpcm, "lp/cm")
    out.add("mtf10_lpcm", res.mtf10_lpcm, "lp/cm")
    out.curves["mtf"] = {"f_lpcm": list(map(float, res.f_lpcm)), "mtf": list(map(float, res.mtf))}


def _slice_width(series, out, m: ModuleSlices, centre, rot) -> None:
    """Slice thickness from the two wire ramps (ACR CT QC Manual 2017; docs/conventions.md).

    Along a ramp rising tan θ = 0.5 in z per mm in x, a slice of sensitivity profile SSP(z)
    shows the wire as SSP(tan θ · u) blurred by the in-plane PSF.  The profile is fitted with
    the usual SSP model (rect ⊗ Gaussian); the in-plane blur, a Gaussian of the SD implied by
    the measured MTF50 (σ = √(ln 2 / 2π²) / f50), is removed from the Gaussian part in
    quadrature, and the FWHM of the remaining profile × tan θ is the slice thickness.  For
    thick slices this equals the plain FWHM × tan θ (also reported in details).  Mean of both
    ramps (cancels a z-tilt of the phantom) and of the module-1 slices where the whole
    profile lies on the wires.
    """
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    f50 = out.measurements.get("mtf50_lpcm")
    sigma_xy = math.sqrt(math.log(2) / (2 * math.pi ** 2)) / (f50.value / 10.0) if f50 else 0.0
    widths, plain, per = [], [], []
    # the wires are seen best (whole profile on the wire) near the module centre
    near = sorted(m.indices, key=lambda i: abs(series.positions_mm[i] - m.z_centre_mm))[:MAX_RAMP_SLICES]
    for i in sorted(near):
        img = series.volume[i]          # sampled bilinearly in place (float32 read exactly)
        row, row_plain = [], []
        for ry in g.ramp_y_mm:
            p = meas.ramp_profile(img, sp, centre, rot, ramp_y_mm=ry, fit_limit_mm=g.ramp_half_length_mm)
            inside = (math.isfinite(p.rect_u_mm) and
                      abs(p.centre_u_mm) + p.rect_u_mm / 2 + 2 * p.sigma_u_mm < g.ramp_half_length_mm)
            if inside:
                s_z = math.sqrt(max(p.sigma_u_mm ** 2 - sigma_xy ** 2, 0.0))
                row.append(meas.rect_gauss_fwhm(p.rect_u_mm, s_z) * g.ramp_tan)
                row_plain.append(p.fwhm_u_mm * g.ramp_tan)
            else:
                row.append(math.nan)
                row_plain.append(math.nan)
        per.append(row)
        if all(math.isfinite(v) for v in row):
            widths.append(float(np.mean(row)))
            plain.append(float(np.mean(row_plain)))
    out.details["slice_width_per_slice_mm"] = per
    if widths:
        out.add("slice_thickness_mm", float(np.mean(widths)), "mm")
        out.details["slice_width_plain_fwhm_mm"] = float(np.mean(plain))
        out.details["slice_width_inplane_sigma_mm"] = sigma_xy
    else:
        out.warnings.append("slice_thickness_mm: the wire ramps were not fully visible in any module-1 slice")


def _module2(series, out, m: ModuleSlices, centre, rot) -> None:
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    px = 0.5 * (sp[0] + sp[1])
    stack = series.volume[list(m.indices)]
    cents = [loc.point_px(centre, sp, a + rot, g.cnr_distance_mm) for a in (g.cnr_rod_angle_deg,
                                                                            g.cnr_background_angle_deg)]
    mean, sd, n = circle_stats(stack, cents, g.cnr_roi_radius_mm / px)
    mu, noise = pooled(mean, sd)
    cnr = (mu[0] - mu[1]) / noise[1]
    out.add("cnr", float(cnr), "1")
    out.details["cnr"] = {"rod_hu": float(mu[0]), "background_hu": float(mu[1]), "background_sd_hu": float(noise[1])}


def _module3(series, out, m: ModuleSlices, centre, rot) -> None:
    from iqa.phantoms import _ct
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    px = 0.5 * (sp[0] + sp[1])
    stack = series.volume[list(m.indices)]
    cents = [centre] + [loc.point_px(centre, sp, a, g.uniformity_distance_mm) for a in g.uniformity_angles_deg]
    mean, sd, n = circle_stats(stack, cents, g.uniformity_roi_radius_mm / px)
    mu, noise = pooled(mean, sd)
    out.add("water_hu", float(mu[0]), "HU")
    out.add("noise_hu", float(noise[0]), "HU")
    diffs = mu[1:] - mu[0]
    out.add("uniformity_hu", float(np.max(np.abs(diffs))), "HU")
    out.details["uniformity"] = {"centre_hu": float(mu[0]),
                                 "peripheral_hu": dict(zip(("12", "3", "6", "9"), map(float, mu[1:])))}
    nps_centres = [centre] + [loc.point_px(centre, sp, a, g.nps_distance_mm) for a in g.nps_angles_deg]
    nps_idx = sorted(range(len(m.indices)), key=lambda j: abs(series.positions_mm[m.indices[j]] - m.z_centre_mm))
    try:
        nps = _ct.nps_from_rois(stack[sorted(nps_idx[:MAX_NPS_SLICES])], spacing_mm=sp, centres_yx_px=nps_centres,
                                size_mm=g.nps_roi_mm, where=series.where)
    except LocalizationError as exc:          # uniformity, noise and BBs still stand
        out.warnings.append(f"nps_peak_lpcm, nps_mean_lpcm: not measured ({exc})")
        nps = None
    if nps is not None:
        _add_nps(out, nps)
    _bbs(series, out, m, stack, centre, rot, float(mu[0]))


def _add_nps(out, nps) -> None:
    out.add("nps_peak_lpcm", _nps_peak(nps.f_lpcm, nps.nps, nps.nps_peak_lpcm), "lp/cm")
    out.add("nps_mean_lpcm", nps.nps_mean_lpcm, "lp/cm")
    out.details["nps_integral_hu2"] = nps.integral_hu2
    out.details["nps_variance_hu2"] = nps.variance_hu2
    out.curves["nps"] = {"f_lpcm": list(map(float, nps.f_lpcm)), "nps_hu2mm2": list(map(float, nps.nps))}


def _bbs(series, out, m: ModuleSlices, stack, centre, rot, background_hu: float) -> None:
    """distance_error_mm = measured BB separation − 100 mm (docs/conventions.md, module 3)."""
    g = GEOMETRY
    sp = series.pixel_spacing_mm
    bbs = meas.find_bbs(stack, sp, centre, rot, distance_mm=g.bb_distance_mm, background_hu=background_hu)
    if bbs is None:
        out.warnings.append("distance_error_mm: the two BBs of module 3 were not found")
    else:
        out.add("distance_error_mm", bbs.distance_mm - g.bb_distance_mm, "mm")
        out.details["bbs_px"] = [{"x": p[1], "y": p[0]} for p in bbs.positions_yx_px]
        out.details["bb_slice_z_mm"] = float(series.positions_mm[m.indices[bbs.slice_index]])


def _nps_peak(f, nps, fallback: float) -> float:
    """Frequency of the radial NPS maximum from a parabola through the bins within 80 % of the
    largest value around it (less sensitive to the noise of single bins than a 3-point fit)."""
    f = np.asarray(f, dtype=np.float64)
    v = np.asarray(nps, dtype=np.float64)
    if v.size < 5:
        return fallback
    i = int(np.argmax(v[1:])) + 1
    lo = i
    while lo > 1 and v[lo - 1] >= 0.8 * v[i]:
        lo -= 1
    hi = i
    while hi < v.size - 1 and v[hi + 1] >= 0.8 * v[i]:
        hi += 1
    if hi - lo < 2:
        lo, hi = max(i - 1, 1), min(i + 1, v.size - 1)
    if hi - lo < 2:
        return fallback
    a, b, _ = np.polyfit(f[lo:hi + 1], v[lo:hi + 1], 2)
    if not a < 0:
        return fallback
    peak = -b / (2 * a)
    return float(peak) if f[lo] <= peak <= f[hi] else fallback


def _module4(out, image, sp, centre, rot) -> None:
    g = GEOMETRY
    ctfs = {}
    for b in g.bars:
        r = meas.bar_ctf(image, sp, centre, angle_deg=b.angle_deg + rot, distance_mm=g.bar_distance_mm,
                         frequency_lpcm=b.frequency_lpcm, contrast_hu=g.bar_contrast_hu)
        ctfs[b.frequency_lpcm] = r.ctf
    out.details["bar_ctf"] = {f"{f:g}": v for f, v in ctfs.items()}
    bad = [f for f, v in ctfs.items() if not (math.isfinite(v) and -0.1 < v < 1.2)]
    if bad:
        out.warnings.append("resolution_lpcm: bar pattern(s) " + ", ".join(f"{f:g}" for f in bad) +
                            " lp/cm could not be measured (too few distinct phases sampled or implausible CTF)")
    # a pattern above the pixel Nyquist frequency is aliased into a coarser one in the image, so
    # it is never counted as resolved (however well its modulation survives the PSF)
    nyquist = 5.0 / max(sp)
    out.details["bar_nyquist_lpcm"] = nyquist
    ok = [f for f, v in ctfs.items() if f not in bad and f <= nyquist and v >= g.ctf_threshold]
    out.add("resolution_lpcm", float(max(ok)) if ok else 0.0, "lp/cm")
