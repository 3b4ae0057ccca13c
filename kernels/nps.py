"""Noise power spectrum (NPS) stacking and radial averaging.

AAPM Report 233 (TG-233, 2019), section 5.2, and ICRU Report 87: from ``N`` square ROIs of
``Nx × Ny`` pixels in a uniform region, subtract from each a fitted 2nd-order polynomial
surface (removes the mean and low-frequency cupping), then

    NPS(fx, fy) = (Δx Δy / (Nx Ny)) · ⟨ |DFT(ROI − fit)|² ⟩        [HU² mm²]

(the average over ROIs).  Parseval gives ``Σ NPS · Δfx Δfy = mean variance of the detrended
ROIs`` exactly, the check TG-233 recommends.

The detrending is a compiled projection onto the orthonormal basis of the 2nd-order surfaces
(reference: one ``lstsq`` per ROI, :func:`iqa.kernels._reference.detrend_poly2_ref`); a BLAS
matrix product does the same work but degrades badly when its threads compete for busy cores.
The FFT stays ``numpy.fft.rfft2`` (pocketfft; Numba cannot call it).  The radial average is a
compiled binning loop (:func:`radial_average`, reference
:func:`iqa.kernels._reference.radial_average_ref`); on a 64 × 64 spectrum the vectorised
``bincount`` reference is already within ~2× of it, since both are memory-bound.

Public API::

    poly2_design(ny, nx) -> (ny*nx, 6) design matrix
    detrend_poly2(rois) -> residuals (n, ny, nx)
    nps_2d(rois, dy_mm, dx_mm) -> (nps (ny, nx) unshifted, fy (ny,), fx (nx,)) cycles/mm
    add_power(spec, acc) -> None: acc += Σ_i |spec[i]|², in order
    radial_average(values, fy, fx, bin_width) -> (f_centre, mean, counts)
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

__all__ = ["poly2_design", "detrend_poly2", "nps_2d", "add_power", "radial_average"]


def poly2_design(ny: int, nx: int) -> np.ndarray:
    """Design matrix of the 2nd-order surface ``1, x, y, x², xy, y²`` (coordinates scaled to [-1, 1])."""
    y, x = np.meshgrid(np.linspace(-1.0, 1.0, ny), np.linspace(-1.0, 1.0, nx), indexing="ij")
    x = x.ravel()
    y = y.ravel()
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


@lru_cache(maxsize=32)
def _poly2_basis(ny: int, nx: int) -> np.ndarray:
    """Orthonormal basis (ny*nx, 6) of the 2nd-order surfaces (QR of the design matrix), read-only."""
    q, _ = np.linalg.qr(poly2_design(ny, nx))
    q = np.ascontiguousarray(q)
    q.setflags(write=False)
    return q


@lru_cache(maxsize=32)
def _poly2_basis_t(ny: int, nx: int) -> np.ndarray:
    """:func:`_poly2_basis` transposed, C-contiguous (6, ny*nx), read-only: the rows
    :func:`_project_out` runs along."""
    qt = np.ascontiguousarray(_poly2_basis(ny, nx).T)
    qt.setflags(write=False)
    return qt


def detrend_poly2(rois: np.ndarray) -> np.ndarray:
    """Subtract a least-squares 2nd-order polynomial surface from each ROI.

    Parameters
    ----------
    rois : array (n, ny, nx) or (ny, nx); must be finite.

    Returns
    -------
    float64 array of the same shape: residuals.
    """
    arr = np.asarray(rois, dtype=np.float64)
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"rois must be (n, ny, nx), got shape {arr.shape}")
    n, ny, nx = arr.shape
    if ny * nx < 6:
        raise ValueError("ROIs need at least 6 pixels for a 2nd-order fit")
    qt = _poly2_basis_t(ny, nx)
    flat = np.ascontiguousarray(arr.reshape(n, ny * nx))
    res = np.empty_like(flat)
    _project_out(flat, qt, res)                # least-squares residual: x - Q Qᵀ x
    res = res.reshape(n, ny, nx)
    return res[0] if squeeze else res


@njit(cache=True)
def _project_out(flat, qt, out):
    """out[i] = flat[i] − Q (Qᵀ flat[i]) for each row i; ``qt`` is Qᵀ (6, m), C-contiguous, the
    orthonormal 2nd-order surfaces.

    One pass over each row accumulates the six coefficients in six scalars (registers: ~3×
    faster than an array of ``k`` accumulators, which the compiler keeps in memory), each still
    summed over ``p`` in order; the subtraction then takes the coefficients in order 0..5 for
    each element.  The order of operations per element is that of one pass per coefficient, so
    the result is bit-identical to it.  The kernel allocates nothing and raises nothing: loading
    it from the cache then needs none of numba's array-allocation and string lowering modules
    (~0.12 s of a cold ``iqa analyze`` when it did).
    """
    n, m = flat.shape
    for i in range(n):
        c0 = c1 = c2 = c3 = c4 = c5 = 0.0
        for p in range(m):
            x = flat[i, p]
            c0 += qt[0, p] * x
            c1 += qt[1, p] * x
            c2 += qt[2, p] * x
            c3 += qt[3, p] * x
            c4 += qt[4, p] * x
            c5 += qt[5, p] * x
        for p in range(m):
            out[i, p] = (((((flat[i, p] - qt[0, p] * c0) - qt[1, p] * c1) - qt[2, p] * c2) - qt[3, p] * c3)
                         - qt[4, p] * c4) - qt[5, p] * c5


#: Bytes of float64 ROIs per block in :func:`nps_2d`.  Small blocks keep the temporaries
#: (residuals, spectrum, squares) in cache and let malloc reuse them from the heap; one block
#: of all ROIs (a 512² water slice: 45 ROIs of 66², ~10 MB of temporaries) gets fresh mmap pages,
#: whose page faults alone cost ~4 ms, more than the FFT.  Measured on water.analyze at 512²
#: (min of 15): 40 kB 10.0 ms, 96 kB 8.9, 256 kB 8.8, 400 kB 8.8, 2 MB 20.7 (1 slice).
_BLOCK_BYTES = 256 * 1024


def nps_2d(rois: np.ndarray, dy_mm: float, dx_mm: float, *, detrend: bool = True,
           return_variance: bool = False):
    """Ensemble 2-D NPS (HU² mm²) of square ROIs (TG-233 eq. 5.1).

    Returns the NPS in FFT order (zero frequency at [0, 0]) and the frequency axes fy, fx in
    cycles/mm (``numpy.fft.fftfreq``); with ``return_variance`` also the mean variance (HU²) of
    the detrended ROIs, which the NPS integral must equal.  The half spectrum ``rfft2`` is
    computed and mirrored (|F(−k)| = |F(k)| for real input).

    The ROIs are detrended and transformed a few at a time and their |DFT|² summed in ROI order
    (:func:`add_power`), which gives the same spectrum bit for bit as one ``rfft2`` of the whole
    stack and a mean over axis 0; the variance is summed block by block (equal to one
    ``mean(res²)`` of the whole stack within rounding, ~1e-16 relative).
    """
    arr = np.asarray(rois)
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if not np.all(np.isfinite(arr)):
        raise ValueError("NPS ROIs contain non-finite pixels")
    n, ny, nx = arr.shape
    nh = nx // 2 + 1
    acc = np.zeros((ny, nh))
    sq = 0.0
    block = max(1, _BLOCK_BYTES // max(1, ny * nx * 8))
    for s in range(0, n, block):
        part = np.asarray(arr[s:s + block], dtype=np.float64)      # float32 ROIs: same values
        res = detrend_poly2(part) if detrend else part - part.mean(axis=(1, 2), keepdims=True)
        add_power(np.fft.rfft2(res), acc)
        if return_variance:
            sq += float(np.square(res).sum())
    half = acc / n
    power = np.empty((ny, nx))
    power[:, :nh] = half
    if nx > nh:
        kx = np.arange(nh, nx)
        ky = (-np.arange(ny)) % ny
        power[:, nh:] = half[ky][:, nx - kx]
    nps = power * (dx_mm * dy_mm) / (nx * ny)
    fy, fx = np.fft.fftfreq(ny, d=dy_mm), np.fft.fftfreq(nx, d=dx_mm)
    if return_variance:
        return nps, fy, fx, sq / (n * ny * nx)
    return nps, fy, fx


@njit(cache=True)
def _add_power(spec, acc):
    for i in range(spec.shape[0]):
        for y in range(spec.shape[1]):
            for x in range(spec.shape[2]):
                re = spec[i, y, x].real
                im = spec[i, y, x].imag
                acc[y, x] += re * re + im * im


def add_power(spec: np.ndarray, acc: np.ndarray) -> None:
    """``acc += |spec[i]|²`` for i = 0, 1, … in order (in place; reference
    :func:`iqa.kernels._reference.add_power_ref`).

    The sum runs over the spectra one at a time, the order ``numpy.mean(..., axis=0)`` takes,
    so adding blocks of spectra in turn gives the whole stack's sum bit for bit.

    Parameters
    ----------
    spec : complex array (n, ny, nh)
    acc : float64 array (ny, nh), C-contiguous, updated in place
    """
    spec = np.asarray(spec, dtype=np.complex128)
    if spec.ndim != 3 or acc.shape != spec.shape[1:] or acc.dtype != np.float64:
        raise ValueError(f"spec (n, ny, nh) and a float64 acc (ny, nh) needed, got {spec.shape} and {acc.shape}")
    _add_power(spec, acc)


@njit(cache=True)
def _n_bins(fy, fx, bin_width):
    """Bins up to the inscribed circle, min(max|fy|, max|fx|) (loops: no temporaries)."""
    my = 0.0
    for v in fy:
        my = max(my, abs(v))
    mx = 0.0
    for v in fx:
        mx = max(mx, abs(v))
    return int(np.floor(min(my, mx) / bin_width + 0.5)) + 1


@njit(cache=True)
def _radial_average(values, fy, fx, bin_width, sums, counts, mean, f_centre):
    """The whole ring average in compiled code: at 64² the NumPy glue around a bare
    accumulation loop (axis maxima, the masked division) cost as much as the loop.  The
    outputs are allocated by the caller: a kernel that allocates loads much more of Numba
    in a fresh process (~0.1 s of a cold ``iqa analyze``)."""
    nb = sums.shape[0]
    for i in range(fy.shape[0]):
        fy2 = fy[i] * fy[i]
        for j in range(fx.shape[0]):
            v = values[i, j]
            if not np.isfinite(v):
                continue
            f = np.sqrt(fy2 + fx[j] * fx[j])
            b = int(np.floor(f / bin_width + 0.5))
            if b < nb:
                sums[b] += v
                counts[b] += 1
    for b in range(nb):
        mean[b] = sums[b] / counts[b] if counts[b] > 0 else np.nan
        f_centre[b] = b * bin_width


def radial_average(values: np.ndarray, fy: np.ndarray, fx: np.ndarray, bin_width: float):
    """Average a 2-D spectrum in rings of radial frequency.

    Bin ``b`` holds ``|f|`` in ``[(b − ½)·w, (b + ½)·w)`` (bin 0 is the half-bin at zero), up to
    the largest radius on both axes (the inscribed circle, ``min(max|fy|, max|fx|)``).

    Returns
    -------
    f_centre : array (nb,), mean : array (nb,) (NaN for empty bins), counts : int64 array (nb,)
    """
    vals = np.ascontiguousarray(values, dtype=np.float64)
    fy = np.ascontiguousarray(fy, dtype=np.float64)
    fx = np.ascontiguousarray(fx, dtype=np.float64)
    if vals.shape != (fy.size, fx.size):
        raise ValueError(f"values shape {vals.shape} does not match axes ({fy.size}, {fx.size})")
    if not bin_width > 0:
        raise ValueError("bin_width must be > 0")
    nb = _n_bins(fy, fx, float(bin_width))
    sums, mean, f_centre = np.zeros(nb), np.empty(nb), np.empty(nb)
    counts = np.zeros(nb, dtype=np.int64)
    _radial_average(vals, fy, fx, float(bin_width), sums, counts, mean, f_centre)
    return f_centre, mean, counts
