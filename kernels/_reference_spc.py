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


def _starts(signal):
    prev = np.concatenate(([False], signal[:-1]))
    return np.flatnonzero(signal & ~prev)


def _window_count(flags, w):
    c = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
    out = np.zeros(flags.size, np.int64)
    if flags.size >= w:
        out[w - 1:] = c[w:] - c[:-w]
    return out


def _ewma_episodes(ewma, elim, up, down):
    """+1 / -1 from an upper / lower EWMA limit crossing until the EWMA is back at the centre line."""
    out = np.zeros(ewma.size, np.int64)
    state = 0
    for j, (e, lim) in enumerate(zip(ewma, elim)):
        if state * e <= 0:             # back at or across the centre line
            state = 0
        if up and e > lim:
            state = 1
        elif down and e < -lim:
            state = -1
        out[j] = state
    return out


def _cusum_episodes(c, h, enabled):
    """True from C > h until C is back to 0."""
    out = np.zeros(c.size, bool)
    if not enabled:
        return out
    on = False
    for j, v in enumerate(c):
        on = v > h or (on and v > 0)
        out[j] = on
    return out


def scan_ref(x, bn, d2, outlier_k, max_iter, min_kept, shewhart_k, shewhart_alarm, lam, ewma_L, exact,
             base_var, k, h, headstart, western_electric, memory, up, down, tol_lo, tol_hi, act_lo, act_hi,
             f_window, f_min, t_days, z_crit):
    """Vectorised NumPy version of ``kernels.spc.scan`` (same arguments and outputs)."""
    x = np.asarray(x, dtype=float)
    n = x.size
    summary = np.full(14, np.nan)
    summary[5:8] = 0.0
    events = []
    for rule, (lo, hi) in enumerate(((tol_lo, tol_hi), (act_lo, act_hi))):
        out = (x < lo) | (x > hi)
        events += [(int(i), rule) for i in _starts(out)]
        if n and out[-1]:
            summary[5] = 1.0
    nb = min(bn, n)
    keep = np.ones(nb, bool)
    m = max(n - bn, 0)
    ewma = elim = cp = cm = np.zeros(m)
    level = np.zeros(m, np.int8)
    if n >= bn:
        b = x[:bn]
        mean = sd = mr = np.nan
        for _ in range(max(1, max_iter) + 1):
            v = b[keep]
            if v.size < 2:
                mean = float(v[0]) if v.size else np.nan
                sd = mr = np.nan
                break
            mean = v.mean()
            mr = np.abs(np.diff(v)).mean()
            sd = mr / d2
            new = keep & (np.abs(b - mean) <= outlier_k * sd)
            if new.sum() == keep.sum() or new.sum() < 2:
                break
            keep = new
        cnt = int(keep.sum())
        summary[1:5] = mean, sd, mr, cnt
        if cnt >= min_kept and sd > 0:
            summary[0] = 1.0
            mx = x[bn:]
            z = (mx - mean) / sd
            ewma, cp, cm = ewma_cusum_ref(z, lam, k, headstart)
            var = np.full(m, lam / (2.0 - lam))
            if exact:
                var = var * (1.0 - (1.0 - lam) ** (2.0 * np.arange(1, m + 1)))
            if base_var:
                var = var + 1.0 / cnt
            elim = ewma_L * np.sqrt(var)
            e_state = _ewma_episodes(ewma, elim, up, down)
            p_on, q_on = _cusum_episodes(cp, h, up), _cusum_episodes(cm, h, down)
            sig = {
                2: (up & (mx > mean + shewhart_k * mr)) | (down & (mx < mean - shewhart_k * mr)),
                3: e_state != 0,
                4: p_on | q_on,
            }
            starts = {3: np.flatnonzero((e_state != 0) & (e_state != np.r_[0, e_state[:-1]])),
                      4: np.union1d(_starts(p_on), _starts(q_on))}
            for r, (thr, need, w) in zip((5, 6, 7), ((2.0, 2, 3), (1.0, 4, 5), (0.0, 8, 8))):
                s = np.zeros(m, bool)
                if western_electric:
                    s = (up & (_window_count(z > thr, w) >= need)) | (down & (_window_count(z < -thr, w) >= need))
                sig[r] = s
            for r, s in sig.items():
                events += [(bn + int(i), r) for i in (starts[r] if r in starts else _starts(s))]
            alarm = sig[3] | sig[4] | (shewhart_alarm & sig[2])
            watch = np.any([sig[r] for r in range(2, 8)], axis=0)
            level = np.where(alarm, 2, np.where(watch, 1, 0)).astype(np.int8)
            if m:
                summary[6] = float(alarm[-1])
                summary[7] = float(any(s[-max(1, memory):].any() for s in sig.values()))
    if n >= f_min and np.isfinite([tol_lo, tol_hi, act_lo, act_hi]).any():
        w = min(n, f_window)
        tt = np.asarray(t_days, float)[-w:] - float(t_days[-1])
        yy = x[-w:]
        if tt[0] != 0.0:
            summary[8:12] = theil_sen_ref(tt, yy, z_crit)
            summary[12] = np.median(tt)
            summary[13] = np.median(yy)
    ev = np.array(sorted(events, key=lambda e: (e[0], e[1])), dtype=np.int64).reshape(-1, 2)
    return summary, ev, keep, ewma, elim, cp, cm, level


def scan_batch_ref(offsets, starts, x, t_days, bn, d2, outlier_k, max_iter, min_kept, shewhart_k,
                   shewhart_alarm, lam, ewma_L, exact, base_var, k, h, headstart, western_electric,
                   memory, up, down, tol_lo, tol_hi, act_lo, act_hi, f_window, f_min, z_crit):
    """``scan_ref`` series by series (same outputs as ``kernels.spc.scan_batch``)."""
    x = np.asarray(x, float)
    total = x.size
    summary = np.empty((len(offsets) - 1, 14))
    keep = np.ones(total, bool)
    charts = [np.zeros(total) for _ in range(4)]
    level = np.zeros(total, np.int8)
    events = []
    for i in range(len(offsets) - 1):
        a, b = int(starts[i]), int(offsets[i + 1])
        s, ev, kp, *ch, lv = scan_ref(x[a:b], bn, d2, outlier_k, max_iter, min_kept, shewhart_k,
                                      shewhart_alarm, lam, ewma_L, exact, base_var, k, h, headstart,
                                      western_electric, memory, up[i], down[i], tol_lo[i], tol_hi[i],
                                      act_lo[i], act_hi[i], f_window, f_min, t_days[a:b], z_crit)
        summary[i] = s
        keep[a:a + kp.size] = kp
        for dst, src in zip(charts, ch):
            dst[a + bn:a + bn + src.size] = src
        level[a + bn:a + bn + lv.size] = lv
        events += [(i, a + int(j), int(r)) for j, r in ev]
    return (summary, np.array(events, np.int64).reshape(-1, 3), keep, *charts, level)
