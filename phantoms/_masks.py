"""Binary-mask helpers shared by the CT and MR localisers.

Both are exact equivalents of the scipy.ndimage idioms they replace (tested), written as one
labelling pass because the localisers call them on every slice of every series.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest connected component of ``mask`` (4-connected, ``ndimage.label``'s default);
    None when ``mask`` is empty."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(mask)`` (same 4-connected background), by labelling.

    A hole is a background component that does not reach the image border; one labelling pass
    finds them all, where ``binary_fill_holes`` dilates the border background until it stops
    growing (2-5× slower on a 256² phantom mask).
    """
    bl, nb = ndimage.label(~mask)
    outside = np.zeros(nb + 1, dtype=bool)
    for edge in (bl[0], bl[-1], bl[:, 0], bl[:, -1]):
        outside[edge] = True
    outside[0] = False                      # label 0 is the mask itself
    return ~outside[bl]
