"""ROI moments for the NEMA SNR methods (NEMA MS 1-2008).

Two statistics underlie both NEMA methods, and both must be computed in float64 whatever the
stored pixel type (GE writes signed int16, Siemens uint16: ``I1 - I2`` must never wrap):

* the mean and sample SD (ddof = 1) of the pixels of a region, for the signal ROI and the
  background (air) regions of the single-image method;
* the mean and sample SD of the pixel-wise difference ``a - b`` of two acquisitions within the
  signal ROI, for the two-acquisition (subtraction) method.

A pixel counts when it lies in ``mask`` and is finite.  The sums are shifted by a sample value and
re-centred on the mean in a second pass when that value is an outlier (see :func:`_moments`), so
a large offset does not cost precision.

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


# One pass over the pixels, in sums shifted by a sample value K (the first counted pixel):
# ``ss = Σ(v − K)² − (Σ(v − K))² / n`` loses about ``log10(1 + (mean − K)²/SD²)`` digits, and a
# counted pixel lies within sqrt(n − 1) SDs of the mean (Samuelson 1968); when K lies more than
# 100 SDs away (an outlier first in a large ROI) a second pass centred on the mean follows (the
# corrected two-pass algorithm, Chan, Golub & LeVeque 1983), so a large offset never costs more
# than ~4 of the 16 digits.  The mask is scanned eight bytes at a time so the
# unmasked part of the image (the background of a signal ROI) is skipped.

@njit(cache=True)
def _first(a, b, use_b, mask):
    """The first finite masked value of a (or a − b), NaN when there is none."""
    af = a.ravel()
    bf = b.ravel()
    mf = mask.ravel()
    nw = af.size // 8
    words = mf[:nw * 8].view(np.uint64)
    start = 8 * nw
    for w in range(nw):
        if words[w] != 0:
            start = 8 * w
            break
    for i in range(start, af.size):
        v = af[i] - bf[i] if use_b else af[i]
        if mf[i] and np.isfinite(v):
            return v
    return np.nan


@njit(cache=True)
def _sums(a, b, use_b, mask, shift, level):
    """(n, Σ(v − shift), Σ(v − shift)², #(v <= level)) over finite v = a (or a − b) inside mask."""
    af = a.ravel()
    bf = b.ravel()
    mf = mask.ravel()
    size = af.size
    nw = size // 8
    words = mf[:nw * 8].view(np.uint64)
    n0 = n1 = k = 0
    s0 = s1 = q0 = q1 = 0.0
    for w in range(nw):
        if words[w] == 0:
            continue
        for i in range(8 * w, 8 * w + 8, 2):
            v = af[i] - bf[i] if use_b else af[i]
            if mf[i] and np.isfinite(v):
                d = v - shift
                n0 += 1
                s0 += d
                q0 += d * d
                k += v <= level
            v = af[i + 1] - bf[i + 1] if use_b else af[i + 1]
            if mf[i + 1] and np.isfinite(v):
                d = v - shift
                n1 += 1
                s1 += d
                q1 += d * d
                k += v <= level
    for i in range(8 * nw, size):
        v = af[i] - bf[i] if use_b else af[i]
        if mf[i] and np.isfinite(v):
            d = v - shift
            n0 += 1
            s0 += d
            q0 += d * d
            k += v <= level
    return n0 + n1, s0 + s1, q0 + q1, k


@njit(cache=True)
def _moments(a, b, use_b, mask, level):
    """(n, mean, sample SD, #(v <= level)) of the finite masked v = a (or a − b)."""
    shift = _first(a, b, use_b, mask)
    if not np.isfinite(shift):
        return 0, np.nan, np.nan, 0
    n, s, q, k = _sums(a, b, use_b, mask, shift, level)
    mean = shift + s / n
    if n < 2:
        return n, mean, np.nan, k
    ss = q - s * s / n
    if not s * s / n <= 1e4 * ss:        # K far from the mean: centre the sums on the mean
        _, s, q, _ = _sums(a, b, use_b, mask, mean, level)
        ss = q - s * s / n
    return n, mean, np.sqrt(max(ss, 0.0) / (n - 1)), k


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
    n, mean, sd, _ = _moments(image, image, False, mask, -np.inf)
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
    n, mean, sd, _ = _moments(a, b, True, mask, -np.inf)
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
    n, mean, sd, low = _moments(image, image, False, mask, float(zero_level))
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
