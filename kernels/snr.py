"""ROI moments for the NEMA SNR methods (NEMA MS 1-2008).

Two statistics underlie both NEMA methods, and both must be computed in float64 whatever the
stored pixel type (GE writes signed int16, Siemens uint16: ``I1 - I2`` must never wrap):

* the mean and sample SD (ddof = 1) of the pixels of a region, for the signal ROI and the
  background (air) regions of the single-image method;
* the mean and sample SD of the pixel-wise difference ``a - b`` of two acquisitions within the
  signal ROI, for the two-acquisition (subtraction) method.

A pixel counts when it lies in ``mask`` and is finite.  Both passes are two-pass (mean first,
then the centred sum of squares), so a large offset does not cost precision.

Public API (arrays and scalars only; thresholds are arguments)::

    masked_moments(image, mask) -> (n, mean, sd)
    difference_moments(a, b, mask) -> (n, mean, sd)
    background_moments(image, mask, zero_level) -> (n, mean, sd, n_at_or_below_zero_level)
    snr_single(signal, background_sd, rayleigh_factor=0.655) -> float
    snr_subtraction(signal, difference_sd) -> float

The plain NumPy references are in :mod:`iqa.kernels._reference_flood`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["RAYLEIGH_SD_FACTOR", "background_moments", "difference_moments", "masked_moments",
           "snr_single", "snr_subtraction"]

#: SD of a Rayleigh-distributed (magnitude of complex Gaussian noise, one channel) background
#: divided by the per-channel Gaussian SD: sqrt(2 - pi/2) = 0.6551 (NEMA MS 1-2008, Henkelman 1985).
RAYLEIGH_SD_FACTOR = math.sqrt(2.0 - math.pi / 2.0)


@njit(cache=True)
def _moments(image, mask):
    n = 0
    total = 0.0
    ny, nx = image.shape
    for y in range(ny):
        for x in range(nx):
            v = image[y, x]
            if mask[y, x] and np.isfinite(v):
                total += v
                n += 1
    if n == 0:
        return 0, np.nan, np.nan
    mean = total / n
    ss = 0.0
    for y in range(ny):
        for x in range(nx):
            v = image[y, x]
            if mask[y, x] and np.isfinite(v):
                d = v - mean
                ss += d * d
    sd = np.sqrt(ss / (n - 1)) if n > 1 else np.nan
    return n, mean, sd


@njit(cache=True)
def _difference_moments(a, b, mask):
    n = 0
    total = 0.0
    ny, nx = a.shape
    for y in range(ny):
        for x in range(nx):
            d = a[y, x] - b[y, x]
            if mask[y, x] and np.isfinite(d):
                total += d
                n += 1
    if n == 0:
        return 0, np.nan, np.nan
    mean = total / n
    ss = 0.0
    for y in range(ny):
        for x in range(nx):
            d = a[y, x] - b[y, x]
            if mask[y, x] and np.isfinite(d):
                e = d - mean
                ss += e * e
    sd = np.sqrt(ss / (n - 1)) if n > 1 else np.nan
    return n, mean, sd


@njit(cache=True)
def _count_at_or_below(image, mask, level):
    k = 0
    ny, nx = image.shape
    for y in range(ny):
        for x in range(nx):
            v = image[y, x]
            if mask[y, x] and np.isfinite(v) and v <= level:
                k += 1
    return k


def _prepare(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image)
    mask = np.asarray(mask, dtype=np.bool_)
    if image.ndim != 2 or mask.shape != image.shape:
        raise ValueError(f"image must be 2-D and mask the same shape, got {image.shape} and {mask.shape}")
    return np.ascontiguousarray(image, dtype=np.float64), np.ascontiguousarray(mask)


def masked_moments(image: np.ndarray, mask: np.ndarray) -> tuple[int, float, float]:
    """Count, mean and sample SD (ddof = 1) of the finite pixels of ``image`` inside ``mask``.

    Parameters
    ----------
    image : 2-D array (y, x), any real dtype (widened to float64).
    mask : 2-D bool array of the same shape.

    Returns
    -------
    (n, mean, sd) in image units; mean is NaN when n = 0, sd NaN when n < 2.
    """
    image, mask = _prepare(image, mask)
    n, mean, sd = _moments(image, mask)
    return int(n), float(mean), float(sd)


def difference_moments(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> tuple[int, float, float]:
    """Count, mean and sample SD (ddof = 1) of ``a - b`` (float64) over finite pixels in ``mask``.

    This is the noise estimate of the NEMA MS 1-2008 two-acquisition method: the difference
    removes the (identical) signal and structure, leaving noise of variance ``2 σ²``.
    """
    a, mask = _prepare(a, mask)
    b = np.ascontiguousarray(np.asarray(b), dtype=np.float64)
    if b.shape != a.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    n, mean, sd = _difference_moments(a, b, mask)
    return int(n), float(mean), float(sd)


def background_moments(image: np.ndarray, mask: np.ndarray, zero_level: float = 0.0
                       ) -> tuple[int, float, float, int]:
    """Moments of a background (air) region plus the count of pixels ``<= zero_level``.

    A magnitude background of one receive channel is Rayleigh distributed, with
    ``mean / SD = sqrt(pi/2) / sqrt(2 - pi/2) = 1.913``; a large share of pixels at (or below)
    zero says the scanner zero-filled or masked the background, which makes the NEMA
    single-image method unusable.

    Returns
    -------
    (n, mean, sd, n_low) — image units; ``n_low`` counts finite pixels in ``mask`` with
    value ``<= zero_level``.
    """
    image, mask = _prepare(image, mask)
    n, mean, sd = _moments(image, mask)
    low = _count_at_or_below(image, mask, float(zero_level))
    return int(n), float(mean), float(sd), int(low)


def snr_single(signal: float, background_sd: float, rayleigh_factor: float = RAYLEIGH_SD_FACTOR) -> float:
    """Single-image SNR, NEMA MS 1-2008 (background method).

    ``SNR = S / (SD_bg / rayleigh_factor)``: the SD of a Rayleigh background is 0.655 times the
    Gaussian SD σ of each channel before the magnitude, so ``SD_bg / 0.655`` estimates σ.
    Returns NaN when ``background_sd`` is not positive.
    """
    if not (background_sd > 0.0) or not math.isfinite(background_sd):
        return math.nan
    return float(signal) / (float(background_sd) / float(rayleigh_factor))


def snr_subtraction(signal: float, difference_sd: float) -> float:
    """Two-acquisition SNR, NEMA MS 1-2008: ``SNR = S / (SD(I1 - I2) / sqrt(2))``.

    ``S`` is the signal-ROI mean (NEMA uses the first image, or the mean of the two), and
    ``difference_sd`` the SD of the difference image within the same ROI.  NaN when
    ``difference_sd`` is not positive.
    """
    if not (difference_sd > 0.0) or not math.isfinite(difference_sd):
        return math.nan
    return float(signal) / (float(difference_sd) / math.sqrt(2.0))
