"""Input arrays for the kernels: float32 or float64, C-contiguous, copied only when needed.

The loader returns float32 volumes; the kernels widen each pixel to float64 exactly as they
read it, so a float32 input gives the same result as a float64 copy without copying 1-2 MB
per call (pipelines sample the same slice hundreds of times).
"""
from __future__ import annotations

import numpy as np


def float_array(a) -> np.ndarray:
    """``a`` as a C-contiguous float32/float64 array (other dtypes widened to float64)."""
    arr = np.asarray(a)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return np.ascontiguousarray(arr)


def float_stack(stack) -> np.ndarray:
    """A 2-D image or 3-D stack as a (z, y, x) :func:`float_array` (z = 1 for an image)."""
    arr = np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"stack must be 2-D (y, x) or 3-D (z, y, x), got shape {arr.shape}")
    return float_array(arr)
