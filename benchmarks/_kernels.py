"""Kernel section: every Numba kernel in ``kernels/*.py`` against its NumPy reference.

Pairs are those the agreement tests in ``tests/kernels/`` check (same function name, the
reference in ``kernels/_reference*.py`` with a ``_ref`` suffix).  Inputs are the sizes the
pipelines pass (512² CT slices, 256² MR images, ROI counts and radii as in the phantom
modules, 1000-day histories for the SPC scan).  Both sides get the same inputs, are run
alternately (side by side) and their outputs are compared, so a speed-up is never reported
for a kernel that computes something else.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from _common import Row, autoinner, log, paired

Z95 = 1.959963984540054


@dataclass
class Case:
    name: str                 # module.function
    size: str
    fast: Callable[..., Any]
    ref: Callable[..., Any]
    args: tuple
    why: str = ""             # the reason when the goal (>= 3x) cannot be met


#: Why the two ROI-moment kernels sit at 2.5-3.2x, around the 3x goal, from run to run.
MOMENTS_WHY = ("one pass at ~1.5 cycles per pixel against NumPy's vectorised boolean gather and two "
               "reductions; the loop is bound by the per-pixel mask branch and the add chain of the "
               "shifted sums (kept for precision); four accumulators or a branch-free select measured "
               "1.5x slower")


def _disk(shape, cy, cx, r):
    gy, gx = np.ogrid[:shape[0], :shape[1]]
    return (gy - cy) ** 2 + (gx - cx) ** 2 <= r * r


def _mr_image(rng, n=256, signal=1000.0, noise=10.0):
    img = np.where(_disk((n, n), n / 2 - 0.3, n / 2 + 0.4, 0.38 * n), signal, 0.0)
    return np.abs(img + rng.normal(0, noise, (n, n)) + 1j * rng.normal(0, noise, (n, n)))


def cases(quick: bool = False) -> list[Case]:
    from iqa.kernels import _reference as R
    from iqa.kernels import _reference_flood as RF
    from iqa.kernels import _reference_mr as RM
    from iqa.kernels import _reference_spc as RS
    from iqa.kernels import bars, esf, flood, gaussian, grid, label, nps, profiles, roi, select, snr, spc, uniformity

    rng = np.random.default_rng(0)
    n_ct = 64 if quick else 512
    n_mr = 48 if quick else 256
    ct = (rng.normal(0, 8, (5, n_ct, n_ct)) + np.where(_disk((n_ct, n_ct), n_ct / 2, n_ct / 2, 0.4 * n_ct), 0, -1000)
          ).astype(np.float32)
    c = n_ct / 2
    ring = np.array([[c + 0.25 * n_ct * math.sin(a), c + 0.25 * n_ct * math.cos(a)]
                     for a in np.linspace(0, 2 * math.pi, 6, endpoint=False)])
    r_roi = 0.04 * n_ct           # ~20 px on 512²: the ACR insert ROIs
    mr = _mr_image(rng, n_mr)
    mr2 = _mr_image(rng, n_mr)
    sig_mask = _disk(mr.shape, n_mr / 2, n_mr / 2, 0.33 * n_mr)
    bg_mask = ~_disk(mr.shape, n_mr / 2, n_mr / 2, 0.45 * n_mr)
    nps_n = 32 if quick else 64
    rois = rng.normal(0, 10, (24, nps_n, nps_n))
    fy, fx = np.fft.fftfreq(nps_n, 0.49), np.fft.fftfreq(nps_n, 0.49)
    power = np.abs(np.fft.fft2(rois[0])) ** 2
    n_pts = 500 if quick else 20_000
    ys, xs = rng.uniform(0, n_ct - 1, n_pts), rng.uniform(0, n_ct - 1, n_pts)
    prof = np.sin(np.arange(2000) * 2 * math.pi / 12.3) + rng.normal(0, 0.1, 2000)
    edge = np.r_[np.zeros(50), np.linspace(0, 1, 20), np.ones(260), np.linspace(1, 0, 20), np.zeros(50)]
    edge = edge + rng.normal(0, 0.01, edge.size)
    angles = np.linspace(0, 2 * math.pi, 360, endpoint=False)
    rays = profiles.sample_rays(mr, (n_mr / 2, n_mr / 2), angles, 0.5, int(0.45 * n_mr / 0.5))
    # grid phantom: bright 4 mm rods on a 20 mm lattice, 1.2 mm pixels
    gimg = rng.normal(0, 10, (n_mr, n_mr))
    pitch = 20 / 1.17
    yy, xx = np.mgrid[:n_mr, :n_mr]
    for gy_ in np.arange(pitch / 2, n_mr, pitch):
        for gx_ in np.arange(pitch / 2, n_mr, pitch):
            gimg += 1000 * np.exp(-((yy - gy_) ** 2 + (xx - gx_) ** 2) / (2 * 1.7 ** 2))
    r_px = 2.0 / 1.17
    h = int(math.ceil(2 * r_px)) + 1
    ty, tx = np.mgrid[-h:h + 1, -h:h + 1]
    template = ((ty / r_px) ** 2 + (tx / r_px) ** 2 <= 1).astype(float)
    score = grid.match_template(gimg, template)
    py, px = grid.local_peaks(score, int(pitch / 2), 0.5)
    # SPC histories
    n_days = 100 if quick else 1000
    x = rng.normal(0, 1, n_days) + np.where(np.arange(n_days) > n_days // 2, 0.02 * (np.arange(n_days) - n_days // 2), 0)
    t = np.arange(n_days, dtype=float)
    z = (x - x[:20].mean()) / x[:20].std()
    scan_args = (x, 20, 1.128, 3.0, 10, 10, 2.66, False, 0.2, 2.86, True, True, 0.5, 5.0, 0.0, True, 5,
                 True, True, -5.0, 5.0, -6.0, 6.0, 20, 8, t, Z95)
    # flood localiser inputs: the phantom above half its level, a flat level map, the 75 % ROI box
    flood_mask = mr > 500.0
    level = np.where(_disk(mr.shape, n_mr / 2, n_mr / 2, 0.45 * n_mr), 1000.0, 500.0)
    k_roi = math.sqrt(0.75)
    half = int(0.38 * n_mr * k_roi) + 2
    roi_box = (n_mr // 2 - half, n_mr // 2 + half, n_mr // 2 - half, n_mr // 2 + half)
    ranks = np.array([int(0.05 * (mr.size - 1)), int(0.99 * (mr.size - 1))])
    spec = np.fft.rfft2(rois[:7])

    def add_power(spec, acc):                  # in place; a fresh copy per call, as the reference returns
        out = acc.copy()
        nps.add_power(spec, out)
        return out

    n_series = 5 if quick else 200
    n_hist = 60 if quick else 365
    lens = np.full(n_series, n_hist)
    offsets = np.r_[0, np.cumsum(lens)]
    starts = offsets[:-1].copy()
    xb = rng.normal(0, 1, offsets[-1])
    tb = np.tile(np.arange(n_hist, dtype=float), n_series)
    up = np.ones(n_series, bool)
    down = np.ones(n_series, bool)
    lo, hi = np.full(n_series, -5.0), np.full(n_series, 5.0)
    batch_args = (offsets, starts, xb, tb, 20, 1.128, 3.0, 10, 10, 2.66, False, 0.2, 2.86, True, True, 0.5, 5.0,
                  0.0, True, 5, up, down, lo, hi, lo - 1, hi + 1, 20, 8, Z95)
    r_piu = math.sqrt(100 / math.pi) / (250 / n_mr)    # 1 cm² disk on a 250 mm FOV

    ct_sz = f"5×{n_ct}²"
    mr_sz = f"{n_mr}²"
    return [
        Case("roi.circle_stats", f"{ct_sz}, 6 ROIs r={r_roi:.0f} px", roi.circle_stats, R.circle_stats_ref,
             (ct, ring, r_roi)),
        Case("esf.radial_bins", f"{ct_sz}, annulus {0.33 * n_ct:.0f}–{0.47 * n_ct:.0f} px, 0.1 px bins",
             esf.radial_bins, R.radial_bins_ref, (ct, c, c, 0.33 * n_ct, 0.47 * n_ct, 0.1)),
        Case("nps.detrend_poly2", f"24 ROIs {nps_n}²", nps.detrend_poly2, R.detrend_poly2_ref, (rois,)),
        Case("nps.radial_average", f"{nps_n}² NPS", nps.radial_average, R.radial_average_ref,
             (power, fy, fx, float(fy[1]))),
        Case("nps.add_power", f"7 spectra {nps_n}×{nps_n // 2 + 1}", add_power, R.add_power_ref,
             (spec, np.zeros(spec.shape[1:]))),
        Case("gaussian.gaussian_filter", f"{mr_sz}, σ 10 px, mode constant",
             lambda im, s: gaussian.gaussian_filter(im, s, mode="constant"),
             lambda im, s: RF.gaussian_filter_ref(im, s, mode="constant"), (mr, 10.24)),
        Case("label.largest_filled", f"{mr_sz} phantom mask", label.largest_filled, RF.largest_filled_ref,
             (flood_mask,)),
        Case("label.mask_moments", f"{mr_sz} disk mask", label.mask_moments, RF.mask_moments_ref, (sig_mask,)),
        Case("select.order_statistics", f"{mr.size:,} values, 2 ranks", select.order_statistics,
             RF.order_statistics_ref, (mr, ranks),
             why="a selection against NumPy's C sort: both are bound by one pass over a 512 kB copy; "
                 "against what it replaces in the pipeline (np.percentile, which partitions in C) it "
                 "measured 3.5x, and 2.5x against a bare np.partition"),
        Case("flood.shrunk_roi", f"{mr_sz}, 75 % ROI", flood.shrunk_roi, RF.shrunk_roi_ref,
             (mr, level, flood_mask, (n_mr / 2, n_mr / 2), k_roi, roi_box)),
        Case("flood.half_level_profile", f"{mr_sz}, 3 lines", flood.half_level_profile, RF.half_level_profile_ref,
             (mr, level, (n_mr / 2, n_mr / 2), 1)),
        Case("bars.bilinear", f"{n_pts:,} points on {n_ct}²", bars.bilinear, R.bilinear_ref, (ct[0], ys, xs)),
        Case("bars.line_profile", f"{n_ct}², 200 samples × 9 lines", bars.line_profile, R.line_profile_ref,
             (ct[0], 0.3 * n_ct, 0.3 * n_ct, 0.7 * n_ct, 0.6 * n_ct, 200, 9, 1.0)),
        Case("bars.segment_extrema", "2000 samples, period 12.3", bars.segment_extrema, R.segment_extrema_ref,
             (prof, 12.3)),
        Case("profiles.sample_line", f"{mr_sz}, 400 samples", profiles.sample_line, RM.sample_line_ref,
             (mr, (n_mr * 0.1, n_mr * 0.5), (n_mr * 0.9, n_mr * 0.5), 400)),
        Case("profiles.sample_rays", f"{mr_sz}, 360 rays × {rays.shape[1]}", profiles.sample_rays, RM.sample_rays_ref,
             (mr, (n_mr / 2, n_mr / 2), angles, 0.5, rays.shape[1], 0.0)),
        Case("profiles.last_falling", f"{rays.shape[0]}×{rays.shape[1]} rays", profiles.last_falling,
             RM.last_falling_ref, (rays, 500.0)),
        Case("profiles.outer_crossings", f"{edge.size} samples", profiles.outer_crossings, RM.outer_crossings_ref,
             (edge, 0.5)),
        Case("profiles.fwhm", f"{edge.size} samples", profiles.fwhm, RM.fwhm_ref, (edge, 0.5)),
        Case("snr.masked_moments", f"{mr_sz}, disk mask", snr.masked_moments, RF.masked_moments_ref, (mr, sig_mask),
             why=MOMENTS_WHY),
        Case("snr.difference_moments", f"2×{mr_sz}", snr.difference_moments, RF.difference_moments_ref,
             (mr, mr2, sig_mask), why=MOMENTS_WHY),
        Case("snr.background_moments", f"{mr_sz}, corner mask", snr.background_moments, RF.background_moments_ref,
             (mr, bg_mask, 0.0)),
        Case("grid.match_template", f"{mr_sz}, template {template.shape[0]}²", grid.match_template,
             RF.match_template_ref, (gimg, template)),
        Case("grid.local_peaks", f"{mr_sz}, r={int(pitch / 2)} px", grid.local_peaks, RF.local_peaks_ref,
             (score, int(pitch / 2), 0.5)),
        Case("grid.refine_centroids", f"{py.size} rods, r=3 px", grid.refine_centroids, RF.refine_centroids_ref,
             (gimg, py, px, 3.0)),
        Case("uniformity.disk_mean_map", f"{mr_sz}, 1 cm² disk (r={r_piu:.1f} px)", uniformity.disk_mean_map,
             RM.disk_mean_map_ref, (mr, sig_mask, r_piu)),
        Case("uniformity.piu_search", f"{mr_sz}, 1 cm² disk", uniformity.piu_search, RM.piu_search_ref,
             (mr, sig_mask, r_piu)),
        Case("spc.ewma_cusum", f"{n_days} days", spc.ewma_cusum, RS.ewma_cusum_ref, (z, 0.2, 0.5, 0.0)),
        Case("spc.theil_sen", "60 points", spc.theil_sen, RS.theil_sen_ref, (t[:60], x[:60], Z95)),
        Case("spc.scan", f"{n_days} days", spc.scan, RS.scan_ref, scan_args),
        Case("spc.scan_batch", f"{n_series} series × {n_hist} days", spc.scan_batch, RS.scan_batch_ref, batch_args),
    ]


def _flatten(v: Any) -> list[np.ndarray]:
    if isinstance(v, (tuple, list)):
        return [a for item in v for a in _flatten(item)]
    return [np.asarray(v, dtype=float)]


def _rows_sorted(x: np.ndarray) -> np.ndarray:
    return x[np.lexsort(x.T[::-1])] if x.ndim == 2 and x.shape[0] else x


def agree(a: Any, b: Any) -> bool:
    """Same outputs (rtol 1e-7); 2-D event tables may list the same rows in another order
    (the agreement tests in tests/kernels compare them sorted too)."""
    fa, fb = _flatten(a), _flatten(b)
    if len(fa) != len(fb):
        return False
    for x, y in zip(fa, fb):
        if x.shape != y.shape:
            return False
        if not (np.allclose(x, y, rtol=1e-7, atol=1e-9, equal_nan=True)
                or np.allclose(_rows_sorted(x), _rows_sorted(y), rtol=1e-7, atol=1e-9, equal_nan=True)):
            return False
    return True


def run(quick: bool = False, repeat: int = 7) -> list[Row]:
    rows = []
    for case in cases(quick):
        f = lambda: case.fast(*case.args)          # noqa: E731
        g = lambda: case.ref(*case.args)           # noqa: E731
        f()                                         # compile / load the Numba cache
        same = agree(f(), g())
        target = 0.002 if quick else 0.02
        inner_f, inner_g = autoinner(f, target), autoinner(g, target)
        inner = max(1, min(inner_f, inner_g))
        tf, tg, ratio, ratio_min = paired(f, g, repeat=repeat, inner=inner, budget_s=2 if quick else 20)
        met = ratio >= 3.0
        note = "OUTPUTS DIFFER on these inputs" if not same else ("" if met else case.why)
        rows.append(Row("kernels", case.name, case.size, tf.min_s, tf.median_s, tf.n, "NumPy reference",
                        tg.min_s, tg.median_s, ratio, "≥ 3×", met, note, extra={"ratio_of_min": ratio_min,
                                                                                 "agree": same}))
        log(f"kernel {case.name}: {ratio:.1f}x")
    return rows
