"""ACR MRI large phantom: all seven ACR tests plus NEMA single-image SNR.

Input: the 11-slice axial ACR series (slice 1 = resolution insert, slice-thickness ramps and
slice-position wedges; slice 5 grid; slice 7 uniform; slices 8-11 low-contrast disks; slice 11
wedges again), or the sagittal localizer on its own (``length_sag_mm`` only).

Slice roles come from the images: the series is ordered by position by the loader, and the
end holding the slice-thickness bar and the resolution block is slice 1 — whichever way the
stack is stored, whatever InstanceNumber or SeriesDescription say.  A partial series reports
the tests whose slices it has and a warning for each test it cannot do.

Definitions: docs/conventions.md; ACR Large and Medium Phantom Test Guidance for the ACR MRI
Accreditation Program (2018); NEMA MS 1-2008 (SNR).  Metric names: shared/INTERFACE.md.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from iqa.dicom import Series
from iqa.errors import InputError, LocalizationError
from iqa.phantoms import _acr_mri_locate as loc
from iqa.phantoms import _acr_mri_tests as tests
from iqa.phantoms._memo import view_memo
from iqa.phantoms._acr_mri_detail import lcd_spokes, resolution
from iqa.phantoms._acr_mri_localizer import localizer_length
from iqa.result import PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "acr-mri-large"
MODALITY = "MR"

#: Nominal ACR slice pitch (mm) and count.
SLICE_PITCH_MM = 10.0
N_SLICES = 11
#: Accept a phantom diameter within this range (mm) as the ACR large phantom.
DIAMETER_RANGE_MM = (172.0, 208.0)
#: ``analyze`` measures any object within half to 1.5 times the nominal 190 mm (gross geometry
#: errors are results); beyond that it is another object or a wrong PixelSpacing, and the
#: mm-sized ROIs would be sub-pixel or larger than the image.
ANALYZABLE_DIAMETER_MM = (95.0, 285.0)
#: Content thresholds (fractions of the phantom signal), see ``_acr_mri_locate``.
BAR_DARK_MAX = 0.35        # slice-thickness bar darker than this across the phantom: slices 1-4
RING_COVERAGE_MIN = 0.9    # low-contrast ring seen all round: slices 8-11
BLOCK_DARK_MIN = 0.5       # resolution block below the bar: slice 1


@dataclass(frozen=True, slots=True)
class Roles:
    """ACR slice number (1-11) -> index into the volume (z)."""

    z_of: dict[int, int]
    reversed: bool

    def get(self, n: int) -> int | None:
        return self.z_of.get(n)


def _is_axial_stack(series: Series) -> bool:
    """Slice normal along the magnet axis (patient z) — the orientation of the ACR axial series."""
    return abs(float(series.normal[2])) > 0.7


def identify(series: Series) -> float:
    """Confidence (0..1) that ``series`` is an ACR large phantom axial series or its sagittal localizer."""
    if series.modality != MODALITY or series.volume.ndim != 3 or series.volume.shape[0] == 0:
        return 0.0
    px = math.sqrt(series.spacing_mm[1] * series.spacing_mm[2])
    if series.volume.shape[0] == 1 and not _is_axial_stack(series):
        try:
            length = _localizer(series)
        except LocalizationError:
            return 0.0
        # a side-on cylinder of the ACR phantom's own dimensions (148 x 190 mm) is specific evidence,
        # stronger than "featureless object" (the flood pipeline caps itself at 0.9 for that case)
        dl, dw = abs(length.length_mm - tests.LENGTH_MM), abs(length.width_mm - tests.DIAMETER_MM)
        if not length.rectangular:
            return 0.0
        return 0.95 if dl < 6 and dw < 8 else 0.85 if dl < 15 and dw < 15 else 0.0
    n = series.volume.shape[0]
    images = [series.volume[0]] if n == 1 else [series.volume[0], series.volume[n - 1]]   # the two ends
    disks = [_rough_disk(im) for im in images]
    if any(d is None for d in disks):
        return 0.0
    if not all(DIAMETER_RANGE_MM[0] < 2 * d.radius_px * px < DIAMETER_RANGE_MM[1] for d in disks):
        return 0.0
    if all(loc.no_dark_structure(im, d, bar_dark_max=BAR_DARK_MAX) for im, d in zip(images, disks)):
        return 0.3    # what the features below give: no bar, no block, no ring (a flood of the ACR's size)
    ends = [_end_features(im, d) for im, d in zip(images, disks)]
    has_s1 = any(e["bar"] < BAR_DARK_MAX and e["block"] > BLOCK_DARK_MIN for e in ends)
    has_ring = any(e["ring"] >= RING_COVERAGE_MIN for e in ends)
    if has_s1 and (has_ring or series.volume.shape[0] > 1):
        return 0.95
    if has_s1 or has_ring:
        return 0.7
    return 0.3    # a disk of the right size but none of the inserts: leave it to the flood pipeline


# identify() and analyze() look at the same slices (both ends of the stack, or the localizer):
# the per-slice localisation is computed once per series (phantoms/_memo.py)

def _localizer(series: Series):
    image, spacing, orientation = series.volume[0], series.pixel_spacing_mm, series.orientation
    return view_memo(image, ("acr-mri-localizer", tuple(spacing), tuple(orientation)),
                     lambda: localizer_length(image, spacing, orientation), errors=(LocalizationError,))


def _rough_disk(image: np.ndarray) -> loc.Disk | None:
    return view_memo(image, ("acr-mri-rough-disk",), lambda: loc.rough_disk(image))


def _end_features(image: np.ndarray, disk: loc.Disk) -> dict[str, float]:
    def compute():
        bar, v, ang = loc.bar_feature(image, disk)
        ring = loc.ring_feature(image, disk)
        return {"bar": bar, "block": loc.block_feature(image, disk, ang, v) if bar < BAR_DARK_MAX else 0.0,
                "ring": ring.coverage}
    return dict(view_memo(image, ("acr-mri-end-features", disk), compute))


def slice_roles(series: Series, disks: list[loc.Disk]) -> tuple[Roles, list[str]]:
    """Assign ACR slice numbers from content (see module docstring); returns roles and warnings."""
    n = series.volume.shape[0]
    warnings: list[str] = []
    first, last = (_end_features(series.volume[i], disks[i]) for i in (0, n - 1))

    def s1_score(f):
        return (f["bar"] < BAR_DARK_MAX) + (f["block"] > BLOCK_DARK_MIN) + (f["ring"] < RING_COVERAGE_MIN)

    s_first, s_last = s1_score(first), s1_score(last)
    if s_first == s_last:
        raise LocalizationError(f"{series.where}: cannot tell which end of the stack is ACR slice 1 "
                                f"(neither end shows the slice-thickness bar and resolution block alone)")
    rev = s_last > s_first
    ends = last if rev else first
    other = first if rev else last
    order = list(range(n - 1, -1, -1)) if rev else list(range(n))
    pos = np.asarray(series.positions_mm, dtype=float)
    pitch = abs(float(np.median(np.diff(pos)))) if n > 1 else SLICE_PITCH_MM
    if ends["bar"] < BAR_DARK_MAX and ends["block"] > BLOCK_DARK_MIN:
        base = 1
        anchor = order[0]
        step = +1
    elif other["ring"] >= RING_COVERAGE_MIN:
        base, anchor, step = N_SLICES, order[-1], -1
        warnings.append("ACR slice 1 (resolution insert) not in the series; slices numbered from slice 11 "
                        "(low-contrast end)")
    else:
        raise LocalizationError(f"{series.where}: ACR slice 1 not recognised at either end of the stack")
    z_of: dict[int, int] = {}
    for z in range(n):
        if abs(pitch - SLICE_PITCH_MM) < 2.0:
            k = int(round(abs(pos[z] - pos[anchor]) / SLICE_PITCH_MM))
        else:
            k = abs(order.index(z) - order.index(anchor))
        num = base + step * k
        if 1 <= num <= N_SLICES and num not in z_of:
            z_of[num] = z
    if abs(pitch - SLICE_PITCH_MM) >= 2.0 and n > 1:
        warnings.append(f"slice pitch {pitch:.1f} mm is not the ACR 10 mm; slices numbered by order")
    return Roles(z_of, rev), warnings


def analyze(series: Series) -> PhantomAnalysis:
    """All ACR tests the series allows; see the module docstring."""
    if series.modality != MODALITY:
        raise InputError(f"{series.where}: {series.modality} series given; the ACR MRI large phantom needs MR")
    out = PhantomAnalysis(NAME)
    vol = series.volume
    spacing = series.pixel_spacing_mm
    if vol.shape[0] == 1 and not _is_axial_stack(series):
        length = _localizer(series)
        out.add("length_sag_mm", length.length_mm, "mm")
        out.add("geometry_max_error_mm", abs(length.length_mm - tests.LENGTH_MM), "mm")
        out.details["localizer"] = {"length_mm": length.length_mm, "width_mm": length.width_mm}
        return out
    disks = []
    for z, im in enumerate(vol):
        d = _rough_disk(im)
        if d is None:
            raise LocalizationError(f"{series.where}: no phantom found on slice z={z} "
                                    f"(position {series.positions_mm[z]:.1f} mm)")
        disks.append(d)
    extent_mm = [2.0 * float(np.median([d.radius_px for d in disks])) * p for p in spacing]
    if not ANALYZABLE_DIAMETER_MM[0] <= min(extent_mm) <= max(extent_mm) <= ANALYZABLE_DIAMETER_MM[1]:
        raise LocalizationError(f"{series.where}: the object measures {extent_mm[1]:.4g} x {extent_mm[0]:.4g} mm "
                                f"(x by y); the ACR large phantom is {tests.DIAMETER_MM:.0f} mm across: "
                                "check PixelSpacing")
    roles, warns = slice_roles(series, disks)
    out.warnings.extend(warns)
    out.details["slices"] = {str(k): int(v) for k, v in sorted(roles.z_of.items())}
    out.details["stack_reversed"] = roles.reversed
    missing = [k for k in range(1, N_SLICES + 1) if k not in roles.z_of]
    if missing:
        out.warnings.append(f"ACR slices {', '.join(map(str, missing))} missing from the series")
    if abs(spacing[0] - spacing[1]) > 0.01 * max(spacing):
        out.warnings.append(f"non-square pixels {spacing[0]:.4f} x {spacing[1]:.4f} mm; rotated-frame "
                            "measurements assume square pixels")
    lengths: dict[str, float] = {}

    def geometry(num: int, names: dict[str, float]) -> loc.Edges | None:
        z = roles.get(num)
        if z is None:
            out.warnings.append(f"geometric accuracy on slice {num}: slice missing")
            return None
        e = loc.edges(vol[z], disks[z])
        for metric, angle in names.items():
            length, seen = loc.chord_mm(e, angle, spacing)
            if not seen:
                out.details.setdefault("edges_from_model", []).append(metric)
            out.add(metric, length, "mm")
            lengths[metric] = length
        out.details[f"centre_s{num}_yx"] = [e.disk.cy, e.disk.cx]
        return e

    e1 = geometry(1, {"length_s1_h_mm": 0.0, "length_s1_v_mm": 90.0})
    geometry(5, {"length_s5_h_mm": 0.0, "length_s5_v_mm": 90.0, "length_s5_d1_mm": 45.0, "length_s5_d2_mm": 135.0})
    if lengths:
        out.add("geometry_max_error_mm", max(abs(v - tests.DIAMETER_MM) for v in lengths.values()), "mm")

    # --- slice 1: thickness, position, resolution
    frame = None
    if e1 is not None:
        im1 = vol[roles.z_of[1]]
        frame = tests.bar_frame(im1, e1.disk)
        if frame is None:
            out.warnings.append("slice thickness: ramp bar not found on slice 1")
        else:
            out.details["rotation_deg"] = math.degrees(frame.angle_rad)
            th = tests.slice_thickness(im1, spacing, e1.disk, frame)
            out.details["ramp_fwhm_mm"] = list(th.ramp_fwhm_mm)
            out.add("slice_thickness_mm", th.slice_thickness_mm, "mm")
            out.curves["ramp_upper"] = {"x_mm": (np.arange(th.profiles[0].size) * th.step_mm).tolist(),
                                        "signal": th.profiles[0].tolist()}
            out.curves["ramp_lower"] = {"x_mm": (np.arange(th.profiles[1].size) * th.step_mm).tolist(),
                                        "signal": th.profiles[1].tolist()}
            pos = tests.slice_position(im1, spacing, e1.disk, frame.angle_rad)
            out.add("slice_position_s1_mm", pos.slice_position_mm, "mm")
            res = resolution(im1, spacing, e1.disk, frame)
            out.warnings.extend(res.warnings)
            if res.ul_mm is not None:
                out.add("resolution_ul_mm", res.ul_mm, "mm")
            if res.lr_mm is not None:
                out.add("resolution_lr_mm", res.lr_mm, "mm")
            out.details["resolution_modulation"] = res.modulation
    else:
        out.warnings.append("slice thickness, slice position (slice 1) and resolution: slice 1 missing")
    angle = frame.angle_rad if frame is not None else 0.0
    z11 = roles.get(11)
    if z11 is not None:
        e11 = loc.edges(vol[z11], disks[z11])
        pos = tests.slice_position(vol[z11], spacing, e11.disk, angle)
        out.add("slice_position_s11_mm", pos.slice_position_mm, "mm")
    else:
        out.warnings.append("slice position on slice 11: slice missing")

    # --- slice 7: uniformity, ghosting, SNR
    z7 = roles.get(7)
    if z7 is not None:
        e7 = loc.edges(vol[z7], disks[z7])
        uni = tests.uniformity(vol[z7], spacing, e7.disk)
        out.add("piu_percent", uni.piu_percent, "%")
        out.details["piu"] = {"low": uni.low, "high": uni.high, "low_yx": list(uni.low_yx),
                              "high_yx": list(uni.high_yx), "large_radius_mm": uni.large_radius_mm}
        snr = tests.snr_single(vol[z7], spacing, e7.disk)
        # Rician correction of the ghost ROIs only when the background is a genuine magnitude-noise floor
        gh = tests.ghosting(vol[z7], spacing, e7.disk, uni.large_mean, snr.sigma_from_mean if snr.usable else 0.0)
        out.add("ghosting_percent", gh.ghosting_percent, "%")
        if gh.clipped:
            out.warnings.append("ghosting: background gap narrower than the 10 cm² ellipse; ellipses shrunk")
        if math.isfinite(snr.snr):
            out.add("snr", snr.snr, "")
        if snr.reason:
            out.warnings.append(f"snr: {snr.reason}")
    else:
        out.warnings.append("uniformity, ghosting and SNR: slice 7 missing")

    # --- slices 8-11: low-contrast detectability
    lcd_slices = [roles.get(k) for k in (8, 9, 10, 11)]
    if all(z is not None for z in lcd_slices):
        lcd = lcd_spokes([vol[z] for z in lcd_slices], spacing, [disks[z] for z in lcd_slices])
        out.warnings.extend(lcd.warnings)
        if lcd.total is not None:
            out.add("lcd_spokes", lcd.total, "")
            out.details["lcd_spokes_per_slice"] = list(lcd.per_slice)
    else:
        out.warnings.append("low-contrast detectability: slices 8-11 not all present")
    return out
