"""Water cylinder (daily CT QA): CT number, noise, uniformity, TG-233 MTF and NPS.

Geometry (docs/conventions.md, "Water cylinder"): a uniform water disk of diameter D (measured,
nominally 200 mm).  Centre ROI of diameter 0.1128·D (400 mm² at D = 200 mm); four peripheral ROIs of
the same size centred at 0.75·R at 90°, 0°, 270°, 180° (image axes).  ``water_hu`` = centre ROI
mean, ``noise_hu`` = centre ROI SD (ddof 1), ``uniformity_hu`` = max |peripheral − centre|, each
pooled over the slices (mean of means, sqrt of mean variances).  ACR CT QC Manual (2017), daily
water-phantom checks; IEC 61223-3-5.

MTF (AAPM TG-233): circular-edge task transfer function from a high-contrast rod when the
cylinder has one, else from the water/air border of the cylinder.  NPS (TG-233): square ROIs in
the uniform water, 2nd-order detrended, away from the rod and the wall.

Every slice whose outline matches the middle slice (same radius within 1 mm, uniform water) is
used; the others are reported in ``warnings``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from iqa.errors import InputError, LocalizationError
from iqa.phantoms import _ct
from iqa.phantoms._masks import box_about
from iqa.phantoms._memo import memo
from iqa.result import PhantomAnalysis

log = logging.getLogger(__name__)

NAME = "water"
MODALITY = "CT"


@dataclass(frozen=True, slots=True)
class WaterGeometry:
    """The ROI rule as fractions of the measured cylinder (docs/conventions.md)."""

    roi_diameter_fraction: float = 0.1128      # of D
    peripheral_fraction: float = 0.75          # of R
    peripheral_angles_deg: tuple[float, ...] = (90.0, 0.0, 270.0, 180.0)
    nps_roi_mm: float = 32.0                   # square NPS ROI side
    nps_within_fraction: float = 0.85          # NPS ROIs lie wholly inside this fraction of R
    nps_max_rois: int = 256
    rod_threshold_hu: float = 300.0            # above water: a high-contrast rod
    min_rod_radius_mm: float = 2.5
    mtf_border_window_mm: float = 10.0


GEOMETRY = WaterGeometry()


@dataclass(frozen=True, slots=True)
class Rod:
    centre_yx_px: tuple[float, float]
    radius_mm: float
    hu: float


# --------------------------------------------------------------------------- identification


def _disk_box(image: np.ndarray, spacing_mm, body: _ct.Body, radius_mm: float):
    """The bounding box of a disk of ``radius_mm`` about the body centre, plus the margin a
    3 × 3 filter needs: ``(crop, inside, (y0, x0))`` with ``inside`` the disk within ``crop``.

    Filtering and thresholding the crop gives the same values inside the disk as the whole
    image would, for a fraction of the work on a large field of view.
    """
    dy, dx = spacing_mm
    cy, cx = body.centre_yx_px
    y0, y1, x0, x1 = box_about((cy, cx), (radius_mm / dy, radius_mm / dx), image.shape, margin=(2, 3))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = ((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2 < radius_mm ** 2
    return image[y0:y1, x0:x1], inside, (y0, x0)


def _uniform_disk_score(image: np.ndarray, spacing_mm, body: _ct.Body | None = None) -> float:
    """1 for a round uniform ~0 HU disk with at most one small high-contrast rod; lower otherwise.

    ``body``: the slice's outline when the caller has already found it (saves a second search).
    """
    from scipy import ndimage
    if body is None:
        try:
            body = _ct.find_body(image, spacing_mm=spacing_mm, n_rays=72)
        except LocalizationError:
            return 0.0
    if not (60.0 <= body.radius_mm <= 250.0) or body.roundness > 0.02:
        return 0.1
    dy, dx = spacing_mm
    r_in = body.radius_mm - 10.0
    cy, cx = body.centre_yx_px
    # the crop and disk of _disk_box, with the squared distances kept for a second radius
    y0, y1, x0, x1 = box_about((cy, cx), (r_in / dy, r_in / dx), image.shape, margin=(2, 3))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    d2 = ((yy - cy) * dy) ** 2 + ((xx - cx) * dx) ** 2
    image = image[y0:y1, x0:x1]
    inner = d2 < r_in ** 2
    vals = image[inner]
    crop = np.asarray(image, dtype=np.float32)
    # Shortcut, exact: each pass of the 3 x 3 mean stays within the min and max of the float32
    # values it averages (rounding to float32 cannot cross a float32 bound), so when no pixel
    # within reach of the disk (its radius plus one pixel diagonal) deviates by more than 60 HU
    # from the median, no smoothed one does and ``odd`` is empty: no filter and no labelling.
    reach = d2 < (r_in + math.hypot(dy, dx)) ** 2
    lo = crop.min(where=reach, initial=np.inf)
    hi = crop.max(where=reach, initial=-np.inf)

    def uniform(m: float) -> bool:
        """Both tests below pass for the median ``m`` (each holds on an interval of ``m``)."""
        return not abs(m) > 60.0 and not (abs(hi - m) > 60.0 or abs(lo - m) > 60.0)
    # The median need not be known exactly when both tests pass over a whole interval [a, b]
    # that holds it, which two counts prove (np.median lies between the middle order
    # statistics); ~10x cheaper than the partition.  A NaN makes a or b NaN: exact path.
    a, b = float(max(hi - 60.0, -60.0)), float(min(lo + 60.0, 60.0))
    n_vals = vals.size
    if (a <= b and uniform(a) and uniform(b) and np.count_nonzero(vals < a) <= (n_vals - 1) // 2
            and np.count_nonzero(vals <= b) >= n_vals // 2 + 1):
        return 1.0
    med = float(np.median(vals))
    if abs(med) > 60.0:
        return 0.1
    if uniform(med):
        return 1.0
    smooth = ndimage.uniform_filter(crop, size=3)
    odd = inner & (np.abs(smooth - med) > 60.0)
    frac = float(odd.sum()) / float(inner.sum())
    # a single rod (a few % of the area) is allowed; inserts, bars and holes are not
    lab, n = ndimage.label(odd)
    if n == 0:
        return 1.0
    sizes = np.bincount(lab.ravel())[1:]
    big = int((sizes * dy * dx > 3.0).sum())
    if big <= 1 and frac < 0.05:
        return 0.95
    return 0.1


def identify(series) -> float:
    """Confidence (0..1) that ``series`` is a uniform water cylinder.

    Up to five slices spread over the series must each show a round ~0 HU disk with no inserts
    (one high-contrast rod allowed): a CatPhan (sensitometry inserts, line pairs) or an ACR 464
    (inserts, bars, BBs, +90 HU module) scores low on at least one of them.  The slices are
    examined in order and the first one scoring ≤ 0.1 ends the search (its score is returned):
    on an ACR or CatPhan series this spares four outline searches.
    """
    if getattr(series, "modality", "") != "CT":
        return 0.0
    vol = series.volume
    nz = vol.shape[0]
    idx = np.unique(np.linspace(0, nz - 1, min(nz, 5)).round().astype(int))
    best = 1.0
    for i in idx:
        best = min(best, _slice_score(series, int(i)))
        if best <= 0.1:
            # one slice that is not a uniform water disk settles it; the other slices could
            # only lower 0.1 to 0.0 (no outline at all), which changes no decision
            break
    return float(best)


def _slice_score(series, z: int) -> float:
    """:func:`_uniform_disk_score` of slice ``z``, computed once for ``identify`` and ``analyze``."""
    vol, spacing = series.volume, series.pixel_spacing_mm

    def score() -> float:
        try:
            body = _body(series, z)
        except LocalizationError:
            return 0.0
        return _uniform_disk_score(vol[z], spacing, body)
    return memo(vol, ("water.disk_score", tuple(map(float, spacing)), z), score)


def _body(series, z: int) -> _ct.Body:
    """The outline of slice ``z`` (:func:`iqa.phantoms._ct.find_body`, 180 rays), found once for
    ``identify`` and ``analyze``; a :class:`LocalizationError` is remembered and raised again."""
    vol, spacing = series.volume, series.pixel_spacing_mm
    return memo(vol, ("water.body", tuple(map(float, spacing)), z),
                lambda: _ct.find_body(vol[z], spacing_mm=spacing, where=f"{series.where}: slice {z + 1}"),
                errors=(LocalizationError,))


# --------------------------------------------------------------------------- localisation


def _find_rod(image: np.ndarray, spacing_mm, body: _ct.Body, water_hu: float) -> Rod | None:
    from scipy import ndimage
    dy, dx = spacing_mm
    # only the disk can hold the rod
    r = body.radius_mm - 5.0
    y0, y1, x0, x1 = box_about(body.centre_yx_px, (r / dy, r / dx), image.shape, margin=(2, 3))
    crop32 = np.asarray(image[y0:y1, x0:x1], dtype=np.float32)
    # a 3 x 3 mean never exceeds the largest float32 value it averages (see _uniform_disk_score):
    # with no pixel of _disk_box's crop above the rod level there is no rod, and no need to filter
    if not (crop32 > water_hu + GEOMETRY.rod_threshold_hu).any():
        return None
    crop, inside, (y0, x0) = _disk_box(image, spacing_mm, body, r)
    smooth = ndimage.uniform_filter(crop32, size=3)
    mask = inside & (smooth > water_hu + GEOMETRY.rod_threshold_hu)
    if not mask.any():
        return None
    lab, n = ndimage.label(mask)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    k = int(np.argmax(sizes))
    area = sizes[k] * dy * dx
    radius = math.sqrt(area / math.pi)
    if radius < GEOMETRY.min_rod_radius_mm:
        return None
    rod = lab == k
    ys, xs = np.nonzero(rod)
    guess = (float(ys.mean()) + y0, float(xs.mean()) + x0)
    level = float(np.median(crop[rod]))
    try:
        centre, rad = _ct.edge_circle(image, spacing_mm=spacing_mm, centre_yx_px=guess, radius_mm=radius,
                                      inside_hu=level, outside_hu=water_hu)
    except LocalizationError:
        return None
    return Rod(centre, rad, level)


def analyze(series) -> PhantomAnalysis:
    """Measure a water-cylinder CT series (see the module docstring for the definitions).

    Raises
    ------
    InputError
        Not a CT series.
    LocalizationError
        No round phantom found, or the phantom is cut by the field of view.
    """
    if series.modality != MODALITY:
        raise InputError(f"{series.where}: {series.modality} series given, but the water cylinder is a CT phantom")
    vol = series.volume
    spacing = series.pixel_spacing_mm
    where = series.where
    px = _ct.isotropic_pixel_mm(spacing, where=where)
    out = PhantomAnalysis(NAME)
    nz = vol.shape[0]
    mid = nz // 2

    body = _body(series, mid)
    if _slice_score(series, mid) < 0.5:     # the test identify() applies (same outline search)
        raise LocalizationError(f"{where}: slice {mid + 1}: not a uniform water cylinder (inserts, bars or a "
                                f"non-water body found); analyse it with --phantom auto or the phantom's own name")
    water0 = float(np.median(_ct.roi_stats_mm(vol[mid], spacing_mm=spacing,
                                              centres_yx_px=[body.centre_yx_px],
                                              radius_mm=0.3 * body.radius_mm).mean_hu))
    # per-slice outline: the same cylinder on every slice used
    centres = np.empty((nz, 2))
    radii = np.empty(nz)
    good = np.zeros(nz, dtype=bool)
    for z in range(nz):
        try:
            c, rad = _ct.edge_circle(vol[z], spacing_mm=spacing, centre_yx_px=body.centre_yx_px,
                                     radius_mm=body.radius_mm, inside_hu=water0, outside_hu=-1000.0,
                                     search_mm=4.0, n_rays=90)
        except LocalizationError:
            continue
        centres[z], radii[z] = c, rad
        good[z] = abs(rad - body.radius_mm) < 1.0 and math.hypot(c[0] - body.centre_yx_px[0],
                                                                 c[1] - body.centre_yx_px[1]) * px < 2.0
    use = _ct.contiguous_slices(good)
    if use.size == 0:
        raise LocalizationError(f"{where}: no slice shows the whole water cylinder")
    if use.size < nz:
        out.warnings.append(f"{nz - use.size} of {nz} slices not fully within the uniform cylinder were left out")
    stack = vol[use[0]:use[-1] + 1]          # a view: use is one contiguous run
    cen = centres[use]
    radius = float(np.mean(radii[use]))
    diameter = 2.0 * radius
    for z in use:
        edge = min(cen[z - use[0], 0], cen[z - use[0], 1], vol.shape[1] - 1 - cen[z - use[0], 0],
                   vol.shape[2] - 1 - cen[z - use[0], 1]) * px
        if edge < radius + 2.0:
            raise LocalizationError(f"{where}: the phantom is cut by the field of view on slice {z + 1}")

    g = GEOMETRY
    roi_r = 0.5 * g.roi_diameter_fraction * diameter
    d = g.peripheral_fraction * radius
    centre_yx = cen.mean(axis=0)
    rois = np.vstack([[centre_yx], _ct.position_px(centre_yx, spacing, np.array(g.peripheral_angles_deg), d)])
    # per-slice ROI centres follow each slice's fitted centre
    per_slice = rois[None, :, :] + (cen - centre_yx)[:, None, :]
    st = _ct.roi_stats_mm(stack, spacing_mm=spacing, centres_yx_px=per_slice, radius_mm=roi_r)
    water = float(st.mean_hu[0])
    out.add("water_hu", water, "HU")
    out.add("noise_hu", float(st.noise_hu[0]), "HU")
    out.add("uniformity_hu", float(np.max(np.abs(st.mean_hu[1:] - water))), "HU")

    rod = _find_rod(stack[len(use) // 2], spacing, _ct.Body(tuple(cen[len(use) // 2]), radius, 0.0, 0.0), water)
    for k, (cy, cx) in enumerate(rois):
        if rod is not None and math.hypot((cy - rod.centre_yx_px[0]) * spacing[0],
                                          (cx - rod.centre_yx_px[1]) * spacing[1]) < roi_r + rod.radius_mm + 1.0:
            out.warnings.append("a high-contrast rod overlaps a CT-number ROI; water_hu/uniformity_hu are biased")
            break

    # MTF (TG-233 circular edge)
    if rod is not None:
        rod_c = np.asarray(rod.centre_yx_px) + (cen - centre_yx)
        mtf = _ct.mtf_circular_edge(stack, spacing_mm=spacing, centre_yx_px=rod_c, radius_mm=rod.radius_mm,
                                    where=where)
        source = "rod"
    else:
        mtf = _ct.mtf_circular_edge(stack, spacing_mm=spacing, centre_yx_px=cen, radius_mm=radius,
                                    window_mm=g.mtf_border_window_mm, refine=False, where=where)
        source = "border"
    out.add("mtf50_lpcm", mtf.mtf50_lpcm, "lp/cm")
    out.add("mtf10_lpcm", mtf.mtf10_lpcm, "lp/cm")
    out.curves["mtf"] = {"f_lpcm": mtf.f_lpcm.tolist(), "mtf": mtf.mtf.tolist()}

    # NPS (TG-233): half-overlapping 32 mm ROIs filling the water inside 0.85 R, clear of the rod;
    # at most ~256 ROI realisations (slices taken evenly when there are more)
    avoid = [] if rod is None else [(rod.centre_yx_px, rod.radius_mm)]
    nps_c = _ct.nps_grid_px(centre_yx, spacing, size_mm=g.nps_roi_mm, within_mm=g.nps_within_fraction * radius,
                            avoid=avoid)
    if len(nps_c):
        n_sl = max(1, min(len(use), g.nps_max_rois // len(nps_c)))
        pick = np.unique(np.linspace(0, len(use) - 1, n_sl).round().astype(int))
        nps = _ct.nps_from_rois(stack if pick.size == len(use) else stack[pick], spacing_mm=spacing, centres_yx_px=nps_c, size_mm=g.nps_roi_mm,
                                where=where)
        out.add("nps_peak_lpcm", nps.nps_peak_lpcm, "lp/cm")
        out.add("nps_mean_lpcm", nps.nps_mean_lpcm, "lp/cm")
        out.curves["nps"] = {"f_lpcm": nps.f_lpcm.tolist(), "nps_hu2mm2": nps.nps.tolist()}
        nps_detail = {"integral_hu2": nps.integral_hu2, "variance_hu2": nps.variance_hu2, "n_rois": nps.n_rois,
                      "roi_px": nps.roi_px}
    else:
        out.warnings.append("nps: no room for NPS ROIs in the uniform water")
        nps_detail = {}

    out.details.update({
        "centre_px": {"row": float(centre_yx[0]), "col": float(centre_yx[1])},
        "diameter_mm": diameter,
        "slices_used": [int(z) + 1 for z in use],
        "roi_radius_mm": roi_r,
        "peripheral_hu": {str(a): float(m) for a, m in zip(g.peripheral_angles_deg, st.mean_hu[1:])},
        "mtf_source": source,
        "rod": None if rod is None else {"row": rod.centre_yx_px[0], "col": rod.centre_yx_px[1],
                                         "radius_mm": rod.radius_mm, "hu": rod.hu},
        "nps": nps_detail,
    })
    return out
