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
def _tie_term_sorted(s):
    """Σ t(t−1)(2t+5) over runs of equal values in sorted ``s`` (Sen 1968 eq. 2.6 tie correction)."""
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
    slope = 0.5 * (s[(m - 1) // 2] + s[m // 2])          # median of the sorted slopes
    ts = np.sort(t)
    ys = np.sort(y)
    intercept = 0.5 * (ys[(n - 1) // 2] + ys[n // 2]) - slope * 0.5 * (ts[(n - 1) // 2] + ts[n // 2])
    var = (n * (n - 1.0) * (2.0 * n + 5.0) - _tie_term_sorted(ts) - _tie_term_sorted(ys)) / 18.0
    sigma = np.sqrt(max(var, 0.0))
    ru = min(int(np.rint((m + z_crit * sigma) / 2.0)), m - 1)
    rl = max(int(np.rint((m - z_crit * sigma) / 2.0)) - 1, 0)
    return slope, intercept, s[rl], s[ru]


# Rule codes in the event list returned by :func:`scan` (order = report order on one day).
RULE_TOLERANCE, RULE_ACTION, RULE_SHEWHART, RULE_EWMA, RULE_CUSUM, RULE_WE2, RULE_WE3, RULE_WE4 = range(8)
N_SUMMARY = 14


@njit(cache=True)
def scan(x, bn, d2, outlier_k, max_iter, min_kept, shewhart_k, shewhart_alarm, lam, ewma_L, exact,
         base_var, k, h, headstart, western_electric, memory, up, down, tol_lo, tol_hi, act_lo, act_hi,
         f_window, f_min, t_days, z_crit):
    """Every SPC statistic of one segment in one pass (see ``iqa.drift`` for the method).

    ``x``: finite values in time order; ``t_days``: their day numbers (float).  Returns
    ``(summary, events, keep, ewma, ewma_limit, c_plus, c_minus, level)``:

    - ``summary`` [0 baseline_ok, 1 mean, 2 sd, 3 mr_bar, 4 kept, 5 out_now, 6 alarm_now,
      7 recent, 8 slope, 9 intercept, 10 slope_lo, 11 slope_hi, 12 t_median, 13 y_median]
      (NaN where not computed; the forecast uses the latest ``f_window`` results, t relative to
      the latest day);
    - ``events`` (n_events, 2) int64 rows (index into ``x``, rule code): the start of every
      out-of-control episode.  Shewhart and Western Electric episodes are runs of signalling
      results; an EWMA episode lasts from crossing a limit until the EWMA is back at the centre
      line, a CUSUM episode from C > h until C is back to 0 (no reset of the sums);
    - ``keep``: baseline results kept after outlier removal;
    - chart arrays for the ``len(x) − bn`` results after the baseline window, and ``level``
      (int8): 2 where an alarm rule (EWMA, CUSUM; Shewhart if ``shewhart_alarm``) signals,
      1 where only a watch rule does, else 0.
    """
    n = x.shape[0]
    summary = np.full(N_SUMMARY, np.nan)
    events = np.empty((8 * n + 1, 2), np.int64)
    ne = 0
    summary[5] = 0.0
    summary[6] = 0.0
    summary[7] = 0.0
    # tolerance and action limits on every result
    for rule in range(2):
        lo = tol_lo if rule == 0 else act_lo
        hi = tol_hi if rule == 0 else act_hi
        prev = False
        for i in range(n):
            out = x[i] < lo or x[i] > hi
            if out and not prev:
                events[ne, 0] = i
                events[ne, 1] = rule
                ne += 1
            prev = out
        if n > 0 and prev:
            summary[5] = 1.0
    nb = min(bn, n)
    keep = np.ones(nb, np.bool_)
    m = max(n - bn, 0)
    ewma = np.zeros(m)
    elim = np.zeros(m)
    cp = np.zeros(m)
    cm = np.zeros(m)
    level = np.zeros(m, np.int8)
    if n >= bn:
        # Phase I: mean, MRbar/d2, iterative removal beyond mean +/- outlier_k sigma
        mean = np.nan
        mr = np.nan
        sd = np.nan
        cnt = nb
        for _ in range(max(1, max_iter) + 1):
            if cnt < 2:
                mean = np.nan
                sd = np.nan
                mr = np.nan
                if cnt == 1:
                    for i in range(nb):
                        if keep[i]:
                            mean = x[i]
                break
            s = 0.0
            for i in range(nb):
                if keep[i]:
                    s += x[i]
            mean = s / cnt
            s = 0.0
            last = -1
            for i in range(nb):
                if keep[i]:
                    if last >= 0:
                        s += abs(x[i] - x[last])
                    last = i
            mr = s / (cnt - 1)
            sd = mr / d2
            new = 0
            for i in range(nb):
                if keep[i] and abs(x[i] - mean) <= outlier_k * sd:
                    new += 1
            if new == cnt or new < 2:
                break
            for i in range(nb):
                if keep[i] and not abs(x[i] - mean) <= outlier_k * sd:
                    keep[i] = False
            cnt = new
        summary[1] = mean
        summary[2] = sd
        summary[3] = mr
        summary[4] = cnt
        if cnt >= min_kept and sd > 0:
            summary[0] = 1.0
            # Phase II charts
            e = 0.0
            p = headstart
            q = headstart
            e_state = 0          # +1 / -1 while an upper / lower EWMA episode lasts
            p_state = False      # while a C+ / C- episode lasts
            q_state = False
            shew_lo = mean - shewhart_k * mr
            shew_hi = mean + shewhart_k * mr
            a = lam / (2.0 - lam)
            prev = np.zeros(8, np.bool_)
            sig = np.zeros(8, np.bool_)
            hist_up = np.zeros((3, 8), np.bool_)   # ring buffers of the last 8 zone flags
            hist_dn = np.zeros((3, 8), np.bool_)
            thr = (2.0, 1.0, 0.0)
            win = (3, 5, 8)
            need = (2, 4, 8)
            recent_from = m - max(1, memory)
            for j in range(m):
                i = bn + j
                z = (x[i] - mean) / sd
                e = lam * z + (1.0 - lam) * e
                p = max(0.0, p + z - k)
                q = max(0.0, q - z - k)
                var = a * (1.0 - (1.0 - lam) ** (2.0 * (j + 1))) if exact else a
                if base_var:
                    var += 1.0 / cnt
                lim = ewma_L * np.sqrt(var)
                ewma[j] = e
                elim[j] = lim
                cp[j] = p
                cm[j] = q
                sig[:] = False
                sig[RULE_SHEWHART] = (up and x[i] > shew_hi) or (down and x[i] < shew_lo)
                # episodes end when the statistic is back at target: EWMA crosses the centre
                # line, C returns to 0 (a new signal after that is a new alarm)
                prev_e = e_state
                prev_p = p_state
                prev_q = q_state
                if e_state == 1 and e <= 0.0:
                    e_state = 0
                elif e_state == -1 and e >= 0.0:
                    e_state = 0
                if up and e > lim:
                    e_state = 1
                elif down and e < -lim:
                    e_state = -1
                p_state = up and (p > h or (p_state and p > 0.0))
                q_state = down and (q > h or (q_state and q > 0.0))
                sig[RULE_EWMA] = e_state != 0
                sig[RULE_CUSUM] = p_state or q_state
                new_ewma = e_state != 0 and e_state != prev_e
                new_cusum = (p_state and not prev_p) or (q_state and not prev_q)
                if western_electric:
                    for r in range(3):
                        hist_up[r, j % 8] = z > thr[r]
                        hist_dn[r, j % 8] = z < -thr[r]
                        if j + 1 >= win[r]:
                            cu = 0
                            cd = 0
                            for b in range(win[r]):
                                slot = (j - b) % 8
                                cu += hist_up[r, slot]
                                cd += hist_dn[r, slot]
                            sig[RULE_WE2 + r] = (up and cu >= need[r]) or (down and cd >= need[r])
                alarm = sig[RULE_EWMA] or sig[RULE_CUSUM] or (shewhart_alarm and sig[RULE_SHEWHART])
                watch = False
                for r in range(2, 8):
                    watch = watch or sig[r]
                level[j] = 2 if alarm else (1 if watch else 0)
                for r in range(2, 8):
                    if r == RULE_EWMA:
                        start = new_ewma
                    elif r == RULE_CUSUM:
                        start = new_cusum
                    else:
                        start = sig[r] and not prev[r]
                    if start:
                        events[ne, 0] = i
                        events[ne, 1] = r
                        ne += 1
                    if sig[r] and j >= recent_from:
                        summary[7] = 1.0
                    prev[r] = sig[r]
            if m > 0 and level[m - 1] == 2:
                summary[6] = 1.0
    # forecast slope over the latest f_window results (only useful when there is a limit to breach)
    has_limit = (np.isfinite(tol_lo) or np.isfinite(tol_hi) or np.isfinite(act_lo)
                 or np.isfinite(act_hi))
    if n >= f_min and has_limit:
        w = min(n, f_window)
        tt = np.empty(w)
        yy = np.empty(w)
        for b in range(w):
            tt[b] = t_days[n - w + b] - t_days[n - 1]
            yy[b] = x[n - w + b]
        if tt[0] != 0.0:
            slope, icpt, lo, hi = theil_sen(tt, yy, z_crit)
            summary[8] = slope
            summary[9] = icpt
            summary[10] = lo
            summary[11] = hi
            tt.sort()
            yy.sort()
            summary[12] = 0.5 * (tt[(w - 1) // 2] + tt[w // 2])
            summary[13] = 0.5 * (yy[(w - 1) // 2] + yy[w // 2])
    ev = events[:ne]
    order = np.argsort(ev[:, 0] * 64 + ev[:, 1])   # by day, then rule: the reference's order
    return summary, ev[order], keep, ewma, elim, cp, cm, level


@njit(cache=True)
def scan_batch(offsets, starts, x, t_days, bn, d2, outlier_k, max_iter, min_kept, shewhart_k,
               shewhart_alarm, lam, ewma_L, exact, base_var, k, h, headstart, western_electric, memory,
               up, down, tol_lo, tol_hi, act_lo, act_hi, f_window, f_min, z_crit):
    """:func:`scan` over many series in one call.

    Series ``i`` is ``x[starts[i]:offsets[i + 1]]`` (``starts`` skips results before the last
    restart); ``up``, ``down`` and the limits are per-series arrays.  Returns
    ``(summary (n, N_SUMMARY), events (n_events, 3) rows (series, index into x, rule),
    keep, ewma, ewma_limit, c_plus, c_minus, level)``; the last six are aligned with ``x``
    (``keep`` meaningful in each baseline window, the chart arrays after it, zero elsewhere).
    """
    ns = offsets.shape[0] - 1
    total = x.shape[0]
    summary = np.empty((ns, N_SUMMARY))
    keep = np.ones(total, np.bool_)
    ewma = np.zeros(total)
    elim = np.zeros(total)
    cp = np.zeros(total)
    cm = np.zeros(total)
    level = np.zeros(total, np.int8)
    events = np.empty((8 * total + 1, 3), np.int64)
    ne = 0
    for i in range(ns):
        a = starts[i]
        b = offsets[i + 1]
        s, ev, kp, ew, el, p, q, lv = scan(
            x[a:b], bn, d2, outlier_k, max_iter, min_kept, shewhart_k, shewhart_alarm, lam, ewma_L,
            exact, base_var, k, h, headstart, western_electric, memory, up[i], down[i], tol_lo[i],
            tol_hi[i], act_lo[i], act_hi[i], f_window, f_min, t_days[a:b], z_crit)
        summary[i] = s
        keep[a:a + kp.shape[0]] = kp
        m = ew.shape[0]
        ewma[a + bn:a + bn + m] = ew
        elim[a + bn:a + bn + m] = el
        cp[a + bn:a + bn + m] = p
        cm[a + bn:a + bn + m] = q
        level[a + bn:a + bn + m] = lv
        for r in range(ev.shape[0]):
            events[ne, 0] = i
            events[ne, 1] = a + ev[r, 0]
            events[ne, 2] = ev[r, 1]
            ne += 1
    return summary, events[:ne], keep, ewma, elim, cp, cm, level
