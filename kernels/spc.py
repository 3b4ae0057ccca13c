"""SPC recursions and the Theil–Sen slope for drift detection (numba fast path).

Plain NumPy references with the same signatures live in ``kernels/_reference_spc.py``;
``tests/kernels/test_spc.py`` checks that both agree.  Every threshold is an argument.

References
----------
- EWMA: Roberts (1959) Technometrics 1:239; Montgomery, *Introduction to Statistical Quality
  Control*, 8th ed. (2019) §9.2, eq. 9.22 ``z_i = λ x_i + (1 − λ) z_{i−1}``.
- Tabular CUSUM: Page (1954) Biometrika 41:100; Montgomery (2019) §9.1.2, eqs. 9.2–9.3
  ``C⁺_i = max(0, x_i − k + C⁺_{i−1})``, ``C⁻_i = max(0, −x_i − k + C⁻_{i−1})`` (standardized x).
- Theil–Sen slope with Sen's confidence interval: Theil (1950); Sen (1968) JASA 63:1379, eq. 2.6
  (variance of Kendall's S with tie correction), as in ``scipy.stats.theilslopes``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def ewma_cusum(z, lam, k, start):
    """EWMA and two-sided tabular CUSUM of standardized values ``z`` (σ units).

    The EWMA starts at 0 (the target) and both CUSUM sums at ``start`` (0, or a head start,
    Lucas & Crosier 1982).  A NaN in ``z`` leaves every statistic unchanged (carried forward).
    Returns ``(ewma, c_plus, c_minus)``, each shaped like ``z``.
    """
    n = z.shape[0]
    ewma = np.empty(n)
    cp = np.empty(n)
    cm = np.empty(n)
    e = 0.0
    p = start
    m = start
    for i in range(n):
        x = z[i]
        if not np.isnan(x):
            e = lam * x + (1.0 - lam) * e
            p = max(0.0, p + x - k)
            m = max(0.0, m - x - k)
        ewma[i] = e
        cp[i] = p
        cm[i] = m
    return ewma, cp, cm


@njit(cache=True)
def _tie_term(v):
    """Σ t(t−1)(2t+5) over groups of equal values in ``v`` (Sen 1968 eq. 2.6 tie correction)."""
    s = np.sort(v)
    total = 0.0
    run = 1
    for i in range(1, s.shape[0] + 1):
        if i < s.shape[0] and s[i] == s[i - 1]:
            run += 1
        else:
            if run > 1:
                total += run * (run - 1.0) * (2.0 * run + 5.0)
            run = 1
    return total


@njit(cache=True)
def theil_sen(t, y, z_crit):
    """Theil–Sen slope of ``y`` on ``t`` with Sen's (1968) confidence interval.

    Pairs with equal ``t`` are skipped.  ``z_crit`` is the two-sided normal quantile
    (1.959964 for 95 %).  Returns ``(slope, intercept, lo, hi)``; the line passes through
    ``(median t, median y)`` (Conover 1980; scipy's default "separate" method).  All NaN when fewer than two
    distinct ``t``.  Inputs must be finite.
    """
    n = t.shape[0]
    slopes = np.empty(max(n * (n - 1) // 2, 1))
    m = 0
    for i in range(n):
        for j in range(i + 1, n):
            dt = t[j] - t[i]
            if dt != 0.0:
                slopes[m] = (y[j] - y[i]) / dt
                m += 1
    if m == 0:
        return np.nan, np.nan, np.nan, np.nan
    s = np.sort(slopes[:m])
    slope = np.median(s)
    intercept = np.median(y) - slope * np.median(t)
    var = (n * (n - 1.0) * (2.0 * n + 5.0) - _tie_term(t) - _tie_term(y)) / 18.0
    sigma = np.sqrt(max(var, 0.0))
    ru = min(int(np.rint((m + z_crit * sigma) / 2.0)), m - 1)
    rl = max(int(np.rint((m - z_crit * sigma) / 2.0)) - 1, 0)
    return slope, intercept, s[rl], s[ru]
