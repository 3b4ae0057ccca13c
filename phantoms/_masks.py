"""Box helper shared by the CT and MR pipelines.

The largest component with its holes filled, which the CT outline, the ACR MRI localizer and the
flood localiser all need, is :func:`iqa.kernels.label.largest_filled` (bit for bit scipy's
``label`` + ``binary_fill_holes``, tested).
"""
from __future__ import annotations


def box_about(centre_yx_px, half_yx_px, shape, margin: tuple[int, int] = (0, 1)) -> tuple[int, int, int, int]:
    """Slice bounds ``(y0, y1, x0, x1)`` of the box ``centre ± half`` (pixels) in an image of
    ``shape``: the ends truncated to integers, widened by ``margin[0]`` before and ``margin[1]``
    after (the default keeps the last pixel; a 3 × 3 filter wants one more on each side), clipped
    to the image.  May be empty when the box lies outside the image."""
    (cy, cx), (ry, rx) = centre_yx_px, half_yx_px
    lo, hi = margin
    return (max(int(cy - ry) - lo, 0), min(int(cy + ry) + hi, shape[0]),
            max(int(cx - rx) - lo, 0), min(int(cx + rx) + hi, shape[1]))
