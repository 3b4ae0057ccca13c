"""Plain NumPy references for ``kernels/spc.py`` (obviously correct, slow)."""
from __future__ import annotations

import numpy as np


def ewma_cusum_ref(z, lam, k, start):
    """Textbook recursions (Montgomery 2019 eqs. 9.2, 9.3, 9.22); NaN carries the state."""
    z = np.asarray(z, dtype=float)
    ewma, cp, cm = (np.empty(z.size) for _ in range(3))
    e, p, m = 0.0, float(start), float(start)
    for i, x in enumerate(z):
        if not np.isnan(x):
            e = lam * x + (1 - lam) * e
            p = max(0.0, p + x - k)
            m = max(0.0, m - x - k)
        ewma[i], cp[i], cm[i] = e, p, m
    return ewma, cp, cm


def theil_sen_ref(t, y, z_crit):
    """Theil–Sen slope with Sen (1968) interval, written from the definitions."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    i, j = np.triu_indices(t.size, 1)
    ok = t[j] != t[i]
    if not ok.any():
        return (np.nan,) * 4
    s = np.sort((y[j] - y[i])[ok] / (t[j] - t[i])[ok])
    slope = float(np.median(s))
    intercept = float(np.median(y) - slope * np.median(t))

    def ties(v):
        _, c = np.unique(v, return_counts=True)
        return float(np.sum(c * (c - 1.0) * (2.0 * c + 5.0)))

    n = t.size
    sigma = np.sqrt(max((n * (n - 1.0) * (2.0 * n + 5.0) - ties(t) - ties(y)) / 18.0, 0.0))
    m = s.size
    ru = min(int(np.rint((m + z_crit * sigma) / 2.0)), m - 1)
    rl = max(int(np.rint((m - z_crit * sigma) / 2.0)) - 1, 0)
    return slope, intercept, float(s[rl]), float(s[ru])
