"""ACR MRI large phantom: the measurements on one slice each (pixel geometry from ``_acr_mri_locate``).

Definitions follow docs/conventions.md, which follows the ACR Large and Medium Phantom Test
Guidance (2018) and NEMA MS 1 (SNR).  Every function takes an image ``(y, x)`` and pixel
spacing ``(dy, dx)`` in mm, and returns a small frozen result in mm / percent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from iqa.kernels.profiles import fwhm, outer_crossings
from iqa.kernels.uniformity import piu_search
from iqa.phantoms._acr_mri_locate import Disk, bar_feature, rotated_sample

#: ACR large phantom nominal dimensions (ACR Large Phantom Test Guidance 2018).
DIAMETER_MM = 190.0
LENGTH_MM = 148.0
#: Large ROI for PIU / ghosting normalisation (conventions.md), and the small PIU ROI.
PIU_LARGE_AREA_MM2 = 20000.0
PIU_SMALL_AREA_MM2 = 100.0
#: Ghosting ellipses: 10 cm², axis ratio 4:1.
GHOST_AREA_MM2 = 1000.0
GHOST_AXIS_RATIO = 4.0
#: NEMA MS 1 single-image SNR: signal ROI 75 % of the phantom area; Rayleigh correction.
SNR_AREA_FRACTION = 0.75
RAYLEIGH_SD_FACTOR = 0.655


def _pixel_mm(spacing_mm: tuple[float, float]) -> float:
    return math.sqrt(spacing_mm[0] * spacing_mm[1])


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN (samples outside the image); NaN where nothing is left, silently."""
    ok = np.isfinite(a)
    n = ok.sum(axis=axis)
    total = np.where(ok, a, 0.0).sum(axis=axis)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _disk_mask(shape, cy: float, cx: float, radius_y_px: float, radius_x_px: float) -> np.ndarray:
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return ((yy - cy) / radius_y_px) ** 2 + ((xx - cx) / radius_x_px) ** 2 <= 1.0


# --------------------------------------------------------------------------- uniformity, ghosting, SNR

def rician_mean(a: np.ndarray | float, sigma: float) -> np.ndarray:
    """Mean of a magnitude (Rician) signal with true amplitude ``a`` and channel SD ``sigma``.

    ``E[M] = σ·sqrt(π/2)·e^(−x/2)·[(1 + x)·I0(x/2) + x·I1(x/2)]``, ``x = a²/(2σ²)``
    (Gudbjartsson & Patz 1995, MRM 34:910); exponentially scaled Bessel functions keep it finite.
    """
    a = np.asarray(a, dtype=np.float64)
    x = a * a / (2.0 * sigma * sigma)
    return sigma * math.sqrt(math.pi / 2) * ((1 + x) * special.i0e(x / 2) + x * special.i1e(x / 2))


def rician_amplitude(mean: float, sigma: float) -> float:
    """Invert :func:`rician_mean`: the true amplitude whose magnitude mean is ``mean`` (0 at or below the noise floor)."""
    if not (sigma > 0) or not math.isfinite(mean):
        return mean
    floor = sigma * math.sqrt(math.pi / 2)
    if mean <= floor:
        return 0.0
    lo, hi = 0.0, max(mean, 1e-12)
    for _ in range(80):           # bisection: rician_mean is increasing in a, and rician_mean(a) >= a
        mid = 0.5 * (lo + hi)
        if rician_mean(mid, sigma) < mean:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True, slots=True)
class Uniformity:
    piu_percent: float
    low: float
    high: float
    low_yx: tuple[int, int]
    high_yx: tuple[int, int]
    large_mean: float
    large_radius_mm: float


def uniformity(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk) -> Uniformity:
    """Percent integral uniformity (ACR 2018 §5): ``100·(1 − (high − low)/(high + low))``.

    Large ROI 200 cm² centred on the phantom (clipped to 0.95 R of the phantom if that is
    smaller); high and low are the means of the brightest and darkest 1 cm² disks lying wholly
    inside it (:func:`iqa.kernels.uniformity.piu_search`).
    """
    dy, dx = spacing_mm
    r_large_mm = min(math.sqrt(PIU_LARGE_AREA_MM2 / math.pi), 0.95 * disk.radius_px * _pixel_mm(spacing_mm))
    mask = _disk_mask(image.shape, disk.cy, disk.cx, r_large_mm / dy, r_large_mm / dx)
    r_small_px = math.sqrt(PIU_SMALL_AREA_MM2 / math.pi) / _pixel_mm(spacing_mm)
    low, low_yx, high, high_yx = piu_search(image, mask, r_small_px)
    piu = 100.0 * (1.0 - (high - low) / (high + low))
    return Uniformity(piu, low, high, low_yx, high_yx, float(np.mean(image[mask])), r_large_mm)


@dataclass(frozen=True, slots=True)
class Ghosting:
    ghosting_percent: float
    top: float
    bottom: float
    left: float
    right: float
    clipped: bool        # an ellipse had to be shrunk to fit between phantom and FOV edge


def ghosting(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, large_mean: float,
             noise_sigma: float = 0.0) -> Ghosting:
    """Percent-signal ghosting (ACR 2018 §6): ``100·|((top + bottom) − (left + right)) / (2·large)|``.

    With ``noise_sigma`` > 0 (the channel noise SD of a magnitude image with a Rayleigh
    background) each background ROI mean is first mapped back to the underlying amplitude
    (:func:`rician_amplitude`): a faint ghost under noise of similar size would otherwise be
    under-read by up to half, because the noise floor ``1.25 σ`` is not additive.

    Four 10 cm² ellipses (4:1, long axis parallel to the nearest FOV edge), each centred midway
    between the phantom edge and the FOV edge on the axis through the phantom centre.  When the
    gap is narrower than the ellipse, the ellipse is shrunk (same area kept as far as the gap
    allows by lengthening it) and ``clipped`` is set.
    """
    dy, dx = spacing_mm
    ny, nx = image.shape
    b_mm = math.sqrt(GHOST_AREA_MM2 / (math.pi * GHOST_AXIS_RATIO))   # semi-minor
    a_mm = GHOST_AXIS_RATIO * b_mm
    r_y = disk.radius_px * _pixel_mm(spacing_mm) / dy
    r_x = disk.radius_px * _pixel_mm(spacing_mm) / dx
    clipped = False
    means = {}
    yy, xx = np.ogrid[:ny, :nx]
    places = {
        "top": (0.5 * ((disk.cy - r_y) + -0.5), disk.cx, (disk.cy - r_y) + 0.5, "h"),
        "bottom": (0.5 * ((disk.cy + r_y) + (ny - 0.5)), disk.cx, (ny - 0.5) - (disk.cy + r_y), "h"),
        "left": (disk.cy, 0.5 * ((disk.cx - r_x) + -0.5), (disk.cx - r_x) + 0.5, "v"),
        "right": (disk.cy, 0.5 * ((disk.cx + r_x) + (nx - 0.5)), (nx - 0.5) - (disk.cx + r_x), "v"),
    }
    for name, (py, px, gap_px, orient) in places.items():
        gap_mm = gap_px * (dy if orient == "h" else dx)
        b, a = b_mm, a_mm
        if 2 * b > 0.8 * gap_mm:           # keep a margin of 10 % of the gap on each side
            b = max(0.4 * gap_mm, 0.5 * min(dy, dx))
            a = min(GHOST_AREA_MM2 / (math.pi * b), 0.45 * (nx * dx if orient == "h" else ny * dy))
            clipped = True
        if orient == "h":
            m = ((yy - py) * dy / b) ** 2 + ((xx - px) * dx / a) ** 2 <= 1.0
        else:
            m = ((yy - py) * dy / a) ** 2 + ((xx - px) * dx / b) ** 2 <= 1.0
        vals = image[m]
        mean = float(np.mean(vals)) if vals.size else math.nan
        means[name] = rician_amplitude(mean, noise_sigma) if noise_sigma > 0 else mean
    g = 100.0 * abs(((means["top"] + means["bottom"]) - (means["left"] + means["right"])) / (2.0 * large_mean))
    return Ghosting(g, means["top"], means["bottom"], means["left"], means["right"], clipped)


@dataclass(frozen=True, slots=True)
class Snr:
    snr: float
    signal: float
    sigma: float           # channel noise SD = SD_bg / 0.655 (NaN when unusable)
    sigma_from_mean: float  # channel noise SD = mean_bg / 1.2533 (Rayleigh mean; lower variance than the SD)
    noise_sd: float        # background SD (before the Rayleigh correction)
    background_mean: float
    usable: bool
    reason: str


def snr_single(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk) -> Snr:
    """NEMA MS 1-2008 single-image SNR: ``S / (SD_bg / 0.655)``.

    Signal: mean of a centred disk of 75 % of the phantom area.  Background: four square ROIs
    (side 15 % of the FOV) in the image corners, 2 pixels in from the border and clear of the
    phantom; the SD is pooled over those within 1.3× the smallest SD (a corner reached by a
    ghost or artefact has a larger SD and is left out).  The background is *unusable* when most of it is
    exactly zero or constant (zero-filled or masked), and suspicious when the mean/SD ratio is
    far from the Rayleigh value 1.91 (parallel imaging, filtering): then the reason is set.
    """
    dy, dx = spacing_mm
    ny, nx = image.shape
    r_mm = math.sqrt(SNR_AREA_FRACTION) * disk.radius_px * _pixel_mm(spacing_mm)
    signal = float(np.mean(image[_disk_mask(image.shape, disk.cy, disk.cx, r_mm / dy, r_mm / dx)]))
    side_y, side_x = max(int(0.15 * ny), 3), max(int(0.15 * nx), 3)
    yy, xx = np.ogrid[:ny, :nx]
    clear = ((yy - disk.cy) * dy) ** 2 + ((xx - disk.cx) * dx) ** 2 > (1.1 * disk.radius_px * _pixel_mm(spacing_mm)) ** 2
    rois = []
    for y0 in (2, ny - 2 - side_y):
        for x0 in (2, nx - 2 - side_x):
            sl = (slice(y0, y0 + side_y), slice(x0, x0 + side_x))
            vals = image[sl][clear[sl]]
            if vals.size >= 9:
                rois.append(vals)
    if not rois:
        return Snr(math.nan, signal, math.nan, math.nan, math.nan, math.nan, False,
                   "no background region clear of the phantom")
    sds = [float(np.std(v, ddof=1)) for v in rois]
    order = [i for i in range(len(sds)) if sds[i] <= 1.3 * min(sds)]
    chosen = np.concatenate([rois[i] for i in order])
    sd = float(math.sqrt(np.mean([sds[i] ** 2 for i in order])))
    mean = float(np.mean(chosen))
    zero_frac = float(np.mean(chosen == 0))
    if zero_frac > 0.5:
        return Snr(math.nan, signal, math.nan, math.nan, sd, mean, False,
                   f"background is {100 * zero_frac:.0f} % exact zeros (zero-filled or masked); snr not reported")
    if not sd > 0:
        return Snr(math.nan, signal, math.nan, math.nan, sd, mean, False,
                   "background has no noise (SD 0); snr not reported")
    reason = ""
    ratio = mean / sd
    if not 1.5 <= ratio <= 2.4:
        reason = (f"background mean/SD = {ratio:.2f}, not the Rayleigh 1.91 of a magnitude image "
                  "(parallel imaging, filtering or a scaled background?)")
    sigma = sd / RAYLEIGH_SD_FACTOR
    return Snr(signal / sigma, signal, sigma, mean / math.sqrt(math.pi / 2), sd, mean, not reason, reason)


# --------------------------------------------------------------------------- slice-1 inserts

@dataclass(frozen=True, slots=True)
class Frame:
    """The phantom frame on slice 1: centre, rotation and the slice-thickness bar (pixel units)."""

    cy: float
    cx: float
    angle_rad: float        # counter-clockwise on screen
    bar_top_v: float        # bar edges along v (downward) at u = 0
    bar_bottom_v: float


def bar_frame(image: np.ndarray, disk: Disk) -> Frame | None:
    """Locate the slice-thickness bar and refine the phantom rotation from its two long edges.

    Straight-line fit of the bar's top and bottom edges (half-way between water and plastic)
    over ``|u| < 0.6 R``; rotation = coarse angle − atan(mean slope).
    """
    dark, v0, ang = bar_feature(image, disk)
    if dark > 0.35:
        return None
    r = disk.radius_px
    level = disk.background + 0.5 * (disk.signal - disk.background)
    for _ in range(2):
        u = np.arange(-0.6 * r, 0.6 * r + 1e-9, 2.0)
        v = np.arange(v0 - 20.0, v0 + 20.0, 0.25)
        grid = rotated_sample(image, (disk.cy, disk.cx), ang, u, v).T       # (u, v)
        tops, bots, us = [], [], []
        for k, prof in enumerate(grid):
            # the bar is a dip: crossings of the inverted profile give its two edges
            first, last = outer_crossings(-prof, -level)
            if math.isfinite(first) and math.isfinite(last) and last > first:
                tops.append(v[0] + 0.25 * first)
                bots.append(v[0] + 0.25 * last)
                us.append(u[k])
        if len(us) < 10:
            return None
        us, tops, bots = np.array(us), np.array(tops), np.array(bots)
        h = bots - tops
        keep = np.abs(h - np.median(h)) < 3.0
        if keep.sum() < 10:
            return None
        kt = np.polyfit(us[keep], tops[keep], 1)
        kb = np.polyfit(us[keep], bots[keep], 1)
        slope = 0.5 * (kt[0] + kb[0])
        ang -= math.atan(slope)
        v0 = 0.5 * (kt[1] + kb[1])
    return Frame(disk.cy, disk.cx, ang, float(kt[1]), float(kb[1]))


@dataclass(frozen=True, slots=True)
class Thickness:
    slice_thickness_mm: float
    ramp_fwhm_mm: tuple[float, float]    # upper, lower ramp
    profiles: tuple[np.ndarray, np.ndarray]
    step_mm: float


def slice_thickness(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, frame: Frame,
                    *, smooth_mm: float = 2.0) -> Thickness:
    """Slice thickness from the crossed 1:10 ramps (ACR 2018 §3): ``0.2·a·b/(a + b)`` mm.

    The bar interior is split in an upper and a lower half (one ramp each, 10 % of the bar
    height kept clear of each plastic edge); each half is averaged across its rows into a
    profile along the bar, smoothed over ``smooth_mm``; ``a``, ``b`` are the FWHM (mm) about
    the profile maximum at half-way between the no-signal level (the air background: the
    plastic gives no signal, and the ramp's own profile wings belong to the slice profile) and
    the maximum — the ACR procedure of windowing at half the ramp signal.
    """
    px = _pixel_mm(spacing_mm)
    r = disk.radius_px
    step = 0.5
    u = np.arange(-0.75 * r, 0.75 * r + 1e-9, step)
    h = frame.bar_bottom_v - frame.bar_top_v
    mid = 0.5 * (frame.bar_top_v + frame.bar_bottom_v)
    halves = (np.arange(frame.bar_top_v + 0.1 * h, mid - 0.05 * h + 1e-9, 0.5),
              np.arange(mid + 0.05 * h, frame.bar_bottom_v - 0.1 * h + 1e-9, 0.5))
    widths, profiles = [], []
    k = max(int(round(smooth_mm / (step * px))), 1)
    kernel = np.ones(k) / k
    for v in halves:
        if v.size == 0:
            v = np.array([mid])
        grid = rotated_sample(image, (frame.cy, frame.cx), frame.angle_rad, u, v)
        prof = _nanmean(grid, axis=0)
        prof = np.convolve(np.where(np.isfinite(prof), prof, np.nanmedian(prof)), kernel, mode="same")
        base = disk.background
        peak = float(np.max(prof[k:-k])) if prof.size > 2 * k else float(np.max(prof))
        width, _, _ = fwhm(prof, base + 0.5 * (peak - base))
        widths.append(width * step * px)
        profiles.append(prof)
    a, b = widths
    return Thickness(0.2 * a * b / (a + b), (a, b), (profiles[0], profiles[1]), step * px)


@dataclass(frozen=True, slots=True)
class Position:
    slice_position_mm: float        # right bar length − left bar length
    left_end_mm: float
    right_end_mm: float


def slice_position(image: np.ndarray, spacing_mm: tuple[float, float], disk: Disk, angle_rad: float) -> Position:
    """Signed bar length difference of the wedge pair at 12 o'clock (ACR 2018 §4), mm.

    The pair is found on a row 12 % of R below the top wall: one dark run across ``u = 0``
    (touching bars) split in halves, or else the nearest dark runs either side of it (bars
    with a gap).  Each bar's end is the first rising half-level crossing (plastic → water) of
    the profile down its middle half.  The sign is right bar minus left bar (image right/left),
    the convention of the iqa fixtures' truth; the ACR criterion uses the magnitude.
    """
    px = _pixel_mm(spacing_mm)
    r = disk.radius_px
    level = disk.background + 0.5 * (disk.signal - disk.background)
    step = 0.25
    u = np.arange(-0.25 * r, 0.25 * r + 1e-9, step)
    row = rotated_sample(image, (disk.cy, disk.cx), angle_rad, u, np.array([-0.88 * r]))[0]
    dark = row < level
    # dark runs (sub-sample edges) on the probe row
    edges_ = np.flatnonzero(np.diff(dark.astype(np.int8)))
    runs = []
    start = 0 if dark[0] else None
    for i in edges_:
        frac = (level - row[i]) / (row[i + 1] - row[i]) if row[i + 1] != row[i] else 0.5
        x = u[i] + step * frac
        if dark[i + 1]:
            start = x
        elif start is not None:
            runs.append((start, x))
            start = None
    runs = [(a, b) for a, b in runs if b - a > 1.0 / px and a < 12.0 / px and b > -12.0 / px]
    if not runs:
        return Position(math.nan, math.nan, math.nan)
    left_runs = [rn for rn in runs if 0.5 * (rn[0] + rn[1]) < 0]
    right_runs = [rn for rn in runs if 0.5 * (rn[0] + rn[1]) >= 0]
    both = [rn for rn in runs if rn[0] < 0 < rn[1]]
    if both:
        # the two bars touch: one dark run, split at its middle
        a, b = both[0]
        w = b - a
        centres = (a + 0.25 * w, a + 0.75 * w)
        half_w = 0.25 * w
    elif left_runs and right_runs:
        lft = max(left_runs, key=lambda rn: rn[1])
        rgt = min(right_runs, key=lambda rn: rn[0])
        centres = (0.5 * (lft[0] + lft[1]), 0.5 * (rgt[0] + rgt[1]))
        half_w = 0.5 * min(lft[1] - lft[0], rgt[1] - rgt[0])
    else:
        return Position(math.nan, math.nan, math.nan)
    v = np.arange(-1.05 * r, -0.2 * r, step)
    ends = []
    for c in centres:
        cols = c + np.linspace(-0.5 * half_w, 0.5 * half_w, 5)
        grid = rotated_sample(image, (disk.cy, disk.cx), angle_rad, cols, v)
        prof = _nanmean(grid, axis=1)
        # start inside the bar (the pair's probe row) and walk down to the water
        start = int(np.searchsorted(v, -0.88 * r))
        first, _ = outer_crossings(prof[start:], level)
        ends.append((v[start] + step * first) * px if math.isfinite(first) else math.nan)
    left, right = ends
    return Position(right - left, left, right)
