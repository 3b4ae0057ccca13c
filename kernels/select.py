"""Order statistics of float64 samples by bucket selection: the values ``np.percentile`` and
``np.median`` interpolate, bit for bit, without partitioning a copy of the whole sample.

``np.percentile(v, [99, 5])`` partitions a copy of ``v`` around four ranks (0.8 ms for a 256²
slice) and ``np.median`` another copy around one or two; the flood localiser asks for five such
values per slice.  :func:`order_statistics` finds the ranks with two passes over the data: a
histogram of ``B`` equal-width value buckets between the minimum and maximum (the bucket index is
a non-decreasing function of the value, so bucket order is value order), then the values of
each bucket holding a wanted rank, sorted.  Exact for any input; a sample whose values all fall
into one bucket degenerates to one sort.

NaN: like ``np.percentile`` and ``np.median``, any NaN in the sample makes every result NaN.

:func:`percentile` and :func:`median` then apply NumPy's own arithmetic (``method="linear"``:
virtual index ``(n − 1)·q``, ``_lerp`` with the ``t ≥ 0.5`` branch; the median the mean of the
two middle values), so the results equal NumPy's (NumPy 2.x ``_quantile`` and ``_median``).
Plain NumPy reference: :func:`iqa.kernels._reference_flood.order_statistics_ref`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["median", "order_statistics", "percentile"]


@njit(cache=True)
def _order_statistics(v, ks, out):
    n = v.shape[0]
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        x = v[i]
        if x != x:
            out[:] = np.nan
            return
        if x < lo:
            lo = x
        if x > hi:
            hi = x
    m = ks.shape[0]
    if lo == hi:
        out[:] = lo
        return
    nb = max(1, min(n // 8, 1 << 16))
    scale = nb / (hi - lo)
    if not (scale > 0.0 and scale < np.inf):     # an infinite value or range: one bucket
        scale = 0.0
        nb = 1
    count = np.zeros(nb + 1, dtype=np.int64)
    for i in range(n):
        b = int((v[i] - lo) * scale) if scale > 0.0 else 0
        if b >= nb:
            b = nb - 1
        count[b + 1] += 1
    for b in range(nb):
        count[b + 1] += count[b]            # count[b] = number of values in buckets < b
    done = -1
    buf = np.empty(0)
    for j in range(m):
        k = ks[j]
        # bucket b with count[b] <= k < count[b + 1]
        a = 0
        z = nb
        while z - a > 1:
            c = (a + z) // 2
            if count[c] <= k:
                a = c
            else:
                z = c
        if a != done:
            size = count[a + 1] - count[a]
            buf = np.empty(size)
            p = 0
            for i in range(n):
                b = int((v[i] - lo) * scale) if scale > 0.0 else 0
                if b >= nb:
                    b = nb - 1
                if b == a:
                    buf[p] = v[i]
                    p += 1
            buf.sort()
            done = a
        out[j] = buf[k - count[a]]


def order_statistics(values: np.ndarray, ranks) -> np.ndarray:
    """``np.sort(values.ravel())[ranks]`` (ranks 0-based, non-negative); all NaN when any value is NaN."""
    v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    ks = np.asarray(ranks, dtype=np.int64).ravel()
    if v.size == 0 or (ks.size and (ks.min() < 0 or ks.max() >= v.size)):
        raise ValueError(f"order_statistics: ranks {ks.tolist()} outside a sample of {v.size}")
    order = np.argsort(ks, kind="stable")
    out = np.empty(ks.size)
    if ks.size:
        sorted_out = np.empty(ks.size)
        _order_statistics(v, np.ascontiguousarray(ks[order]), sorted_out)
        out[order] = sorted_out
    return out


def percentile(values: np.ndarray, q) -> list[float]:
    """``np.percentile(values, q)`` (``method="linear"``) for a sequence of percentiles ``q``, as floats."""
    v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    n = v.size
    qs = np.true_divide(np.asarray(q, dtype=np.float64).ravel(), 100)
    virtual = (n - 1) * qs                     # NumPy's linear method
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above] = n - 1
    nxt[above] = n - 1
    below = virtual < 0
    prev[below] = 0
    nxt[below] = 0
    prev_i, next_i = prev.astype(np.intp), nxt.astype(np.intp)
    stats = order_statistics(v, np.concatenate([prev_i, next_i]))
    a, b = stats[:qs.size], stats[qs.size:]
    gamma = virtual - prev_i                   # NumPy: virtual index minus the previous index
    with np.errstate(invalid="ignore", over="ignore"):
        diff = b - a                           # NumPy's _lerp, t >= 0.5 from the upper end
        res = a + diff * gamma
        upper = gamma >= 0.5
        res[upper] = (b - diff * (1 - gamma))[upper]
    return [float(r) for r in res]


def median(values: np.ndarray) -> float:
    """``float(np.median(values))`` of a non-empty sample."""
    v = np.ascontiguousarray(values, dtype=np.float64).ravel()
    n = v.size
    if n % 2:
        return float(order_statistics(v, [n // 2])[0])
    a, b = order_statistics(v, [n // 2 - 1, n // 2])
    return float((a + b) / 2.0)
