"""ACR MRI large phantom, sagittal localizer: phantom length along its axis (ACR 2018 §1).

The phantom axis lies along the magnet (patient z) axis, so the image axis most aligned with
patient z (from ImageOrientationPatient) is the length direction.  Edges at half the phantom
signal (docs/conventions.md), measured on several lines parallel to the axis across the
middle 70 % of the phantom: inserts touching an end wall (the central post, the wedges)
shorten a few lines, so the length is the median of the lines within 2 mm of the longest
consistent ones (80th percentile).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from iqa.errors import LocalizationError
from iqa.kernels.profiles import outer_crossings, sample_line
from iqa.kernels.label import largest_filled


@dataclass(frozen=True, slots=True)
class LocalizerLength:
    length_mm: float     # along the phantom axis
    width_mm: float      # across it (the phantom diameter)
    rectangular: bool    # the object fills its bounding box (a cylinder seen side-on)


def _robust_length(lengths: np.ndarray) -> float:
    lengths = lengths[np.isfinite(lengths)]
    if lengths.size == 0:
        return math.nan
    ref = float(np.percentile(lengths, 80))
    near = lengths[np.abs(lengths - ref) <= 2.0]
    return float(np.median(near)) if near.size else ref


def localizer_length(image: np.ndarray, spacing_mm: tuple[float, float],
                     orientation: tuple[float, ...], *, n_lines: int = 15) -> LocalizerLength:
    """Length (mm) of the phantom along its axis, and its width, on a sagittal/coronal localizer."""
    img = np.where(np.isfinite(image), image, 0.0).astype(np.float64)
    top = float(np.percentile(img, 99.0))
    if top <= 0:
        raise LocalizationError("localizer: empty image")
    mask = ndimage.binary_closing(img > 0.3 * top, structure=np.ones((5, 5), dtype=bool))
    blob = largest_filled(mask)
    if blob is None:
        raise LocalizationError("localizer: no object found")
    ys, xs = np.nonzero(blob)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    rectangular = blob.sum() / float((y1 - y0 + 1) * (x1 - x0 + 1)) > 0.85
    signal = float(np.median(img[blob & (img > 0.3 * top)]))
    background = float(np.median(img[~ndimage.binary_dilation(blob, iterations=3)]))
    level = background + 0.5 * (signal - background)
    row_z, col_z = abs(orientation[2]), abs(orientation[5])
    dy, dx = spacing_mm
    cy, cx = 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    hy, hx = 0.5 * (y1 - y0), 0.5 * (x1 - x0)

    def lines(vertical: bool) -> float:
        out = []
        if vertical:      # along y, lines spread across x
            n = int(round(2.6 * hy / 0.25)) + 1
            for off in np.linspace(-0.35 * hx, 0.35 * hx, n_lines):
                p = sample_line(img, (cy - 1.3 * hy, cx + off), (cy + 1.3 * hy, cx + off), n)
                a, b = outer_crossings(p, level)
                out.append((b - a) * (2.6 * hy / (n - 1)) * dy)
        else:
            n = int(round(2.6 * hx / 0.25)) + 1
            for off in np.linspace(-0.35 * hy, 0.35 * hy, n_lines):
                p = sample_line(img, (cy + off, cx - 1.3 * hx), (cy + off, cx + 1.3 * hx), n)
                a, b = outer_crossings(p, level)
                out.append((b - a) * (2.6 * hx / (n - 1)) * dx)
        return _robust_length(np.array(out))

    axis_vertical = col_z >= row_z
    length, width = lines(axis_vertical), lines(not axis_vertical)
    if not (math.isfinite(length) and math.isfinite(width)):
        raise LocalizationError("localizer: phantom edges not found")
    return LocalizerLength(length, width, bool(rectangular))
