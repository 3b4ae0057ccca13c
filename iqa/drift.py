"""Drift detection for QC trend series: baseline, control charts, breach forecast, staleness.

One series is the history of one metric on one (scanner, phantom, protocol).  :func:`evaluate`
turns its dated values into a :class:`TrendStatus` (``.to_dict()`` is the trend object of
INTERFACE.md).  :func:`evaluate_batch` does the same for many series in one compiled pass
(``iqa trend`` over a whole store: ~50 µs CPU per series of 20–40 results, against ~300 µs per
separate :func:`evaluate` call).  Parameters live in ``iqa/criteria/spc.toml`` (:func:`load_params`).

Method (each step cites its source)
-----------------------------------
Baseline (Phase I)
    The first ``baseline_n`` valid results after the last restart (event).  Centre x̄ = mean;
    σ = MR̄ / d₂ with MR̄ the average moving range of span 2 and d₂ = 1.128 (Montgomery,
    *Introduction to Statistical Quality Control*, 8th ed. 2019, §6.4, eq. 6.33).  Points beyond
    x̄ ± ``outlier_k``·σ are removed and x̄, σ recomputed until nothing changes (revised trial
    limits, Montgomery §6.4); moving ranges are taken between consecutive kept points.  Fewer
    than ``baseline_n`` results, or fewer than ``baseline_min_fraction`` of them kept, is "insufficient".
Rules (Phase II: results after the baseline window, standardized z = (x − x̄)/σ)
    ``shewhart``  individuals chart: x outside x̄ ± 2.66·MR̄ (= 3σ; Montgomery eq. 6.33); "watch"
                  unless ``shewhart_alarm`` (spc.toml explains why: the false-alarm budget).
    ``ewma``      z_i = λ·z_i + (1 − λ)·z_{i−1}, z₀ = 0 (Roberts 1959; Montgomery §9.2, eq. 9.22);
                  exact time-varying limits ±L·sqrt(λ/(2−λ)·(1 − (1−λ)^{2i}) + 1/m) (eq. 9.25).
                  The 1/m term (m = kept baseline points, on by default, ``ewma_baseline_variance``)
                  is the variance of the baseline mean the chart is measured from: x̄ is independent
                  of later x, so Var(EWMA of x − x̄) gains σ²/m (Jones, Champ & Rigdon 2001).
    ``cusum``     two-sided tabular CUSUM C⁺ = max(0, C⁺ + z − k), C⁻ = max(0, C⁻ − z − k), signal
                  when C > h (Page 1954; Montgomery §9.1.2, eqs. 9.2–9.3); optional head start.
    ``we2`` ``we3`` ``we4``   Western Electric zone tests (Western Electric SQC Handbook 1956):
                  2 of 3 beyond 2σ, 4 of 5 beyond 1σ, 8 in a row, all on one side -> "watch".
    ``tolerance`` ``action``  the limits passed in (from the criteria table); judged on every result.
    Direction: for "up" metrics only the upper side of every chart signals, for "down" only the
    lower side (a better SNR is not an alarm).  Tolerance and action limits are judged both ways.
Alarm list
    For every rule, the date each out-of-control *episode* starts: a rule's first signal after the
    baseline, and again each time it signals after having been back at target.  A CUSUM episode
    lasts from C > h until C is back to 0 and an EWMA episode from a limit crossing until the EWMA
    is back at the centre line, so a statistic hovering near its limit is one alarm, not many.
    The CUSUM sums are never reset to zero after a signal (a reset would re-signal every few
    results during a persistent drift); an event restarts the baseline and with it every chart.
Status (precedence)
    ``stale`` (no result within ``stale_after_days`` before ``today``) > ``out_of_tolerance`` (the
    latest result outside its tolerance or action limits) > ``insufficient`` (no baseline yet) >
    ``alarm`` (an EWMA or CUSUM episode open at the latest result) > ``watch`` (any signal,
    including the Western Electric tests, within the latest ``watch_memory`` results) > ``ok``.
Forecast
    Theil–Sen slope (Theil 1950; Sen 1968) over the latest ``forecast_window`` results, with
    Sen's distribution-free confidence interval (JASA 63:1379, eq. 2.6).  No forecast when the
    interval contains 0 (slope not significant), when the slope points away from the side that
    matters, when the fitted level is already past the limit, or when the breach is more than
    ``forecast_horizon_days`` away.  Breach date = first day the fitted line is past the tolerance
    (the action limit when no tolerance); its interval comes from the interval's slopes through
    the same pivot (median day, median value).
"""
from __future__ import annotations

import fnmatch
import functools
import logging
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from importlib import resources
from typing import Any, Iterable, Sequence

import numpy as np

from iqa.errors import CriteriaError

log = logging.getLogger(__name__)

DIRECTIONS = ("up", "down", "both")
STATUSES = ("ok", "watch", "alarm", "out_of_tolerance", "stale", "insufficient")
LIMIT_RULES = ("tolerance", "action")                 # raise "out_of_tolerance"
CHART_RULES = ("shewhart", "ewma", "cusum")           # ewma, cusum raise "alarm"; shewhart "watch" by default
WATCH_RULES = ("we2", "we3", "we4")                   # raise "watch"
_RULES = LIMIT_RULES + CHART_RULES + WATCH_RULES      # index = rule code of iqa.kernels.spc.scan
_RULE_ORDER = {r: i for i, r in enumerate(_RULES)}
_Z_975 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class SpcParams:
    """SPC parameters (defaults: ``iqa/criteria/spc.toml``, where each value cites its source)."""

    baseline_n: int = 20
    d2: float = 1.128
    outlier_k: float = 3.0
    outlier_max_iter: int = 10
    baseline_min_fraction: float = 0.5
    shewhart_k: float = 2.66
    shewhart_alarm: bool = False
    ewma_lambda: float = 0.2
    ewma_L: float = 2.86
    ewma_limits: str = "exact"
    ewma_baseline_variance: bool = True
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    cusum_headstart: float = 0.0
    western_electric: bool = True
    watch_memory: int = 5
    forecast_window: int = 20
    forecast_min_n: int = 8
    forecast_confidence: float = 0.95
    forecast_horizon_days: float = 365.0
    stale_days_ct: float = 14.0
    stale_days_mr: float = 30.0
    name: str = "iqa SPC defaults"
    version: str = "2026.1"

    def __post_init__(self) -> None:
        problems = []
        if self.baseline_n < 2:
            problems.append("baseline_n must be at least 2")
        if not 0.0 < self.ewma_lambda <= 1.0:
            problems.append("ewma_lambda must be in (0, 1]")
        if self.ewma_limits not in ("exact", "asymptotic"):
            problems.append("ewma_limits must be 'exact' or 'asymptotic'")
        if min(self.ewma_L, self.cusum_h, self.shewhart_k, self.outlier_k, self.d2) <= 0:
            problems.append("limits (ewma_L, cusum_h, shewhart_k, outlier_k, d2) must be positive")
        if not 0.0 < self.baseline_min_fraction <= 1.0:
            problems.append("baseline_min_fraction must be in (0, 1]")
        if not 0.5 < self.forecast_confidence < 1.0:
            problems.append("forecast_confidence must be in (0.5, 1)")
        if self.forecast_min_n < 3 or self.forecast_window < self.forecast_min_n:
            problems.append("need 3 <= forecast_min_n <= forecast_window")
        if problems:
            raise CriteriaError(f"SPC parameters: {'; '.join(problems)}")

    def stale_days(self, modality: str | None) -> float | None:
        """Staleness limit in days for a modality ("CT" 14, "MR" 30 by default; else None)."""
        return {"CT": self.stale_days_ct, "MR": self.stale_days_mr}.get((modality or "").upper())


def _parse_params(text: str, where: str) -> tuple[SpcParams, dict[str, tuple[str, ...]]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CriteriaError(f"{where}: not valid TOML ({exc})") from None
    directions = data.pop("direction", {})
    known = {f.name for f in fields(SpcParams)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise CriteriaError(f"{where}: unknown SPC parameter(s) {', '.join(unknown)}; "
                            f"valid names: {', '.join(sorted(known))}")
    try:
        params = SpcParams(**data)
    except TypeError as exc:
        raise CriteriaError(f"{where}: {exc}") from None
    table = {}
    for side in DIRECTIONS:
        pats = directions.get(side, [])
        if not isinstance(pats, list) or not all(isinstance(p, str) for p in pats):
            raise CriteriaError(f"{where}: direction.{side} must be a list of metric names or patterns")
        table[side] = tuple(pats)
    return params, table


@functools.cache
def _builtin() -> tuple[SpcParams, dict[str, tuple[str, ...]]]:
    text = resources.files("iqa.criteria").joinpath("spc.toml").read_text(encoding="utf-8")
    return _parse_params(text, "iqa/criteria/spc.toml")


def load_params(path: str | os.PathLike | None = None) -> SpcParams:
    """SPC parameters from ``path`` (a site copy of spc.toml) or the built-in ``spc.toml``."""
    if path is None:
        return _builtin()[0]
    try:
        text = open(path, encoding="utf-8").read()
    except OSError as exc:
        raise CriteriaError(f"{path}: cannot read SPC parameters ({exc.strerror or exc})") from None
    return _parse_params(text, str(path))[0]


def metric_direction(metric: str) -> str:
    """Which side of ``metric`` matters: "up" (noise), "down" (SNR, MTF) or "both" (HU, lengths).

    From the ``[direction]`` table of ``spc.toml`` (exact names first, then patterns); a metric
    not listed is "both".
    """
    table = _builtin()[1]
    for side in DIRECTIONS:
        if metric in table[side]:
            return side
    for side in DIRECTIONS:
        if any(fnmatch.fnmatchcase(metric, p) for p in table[side]):
            return side
    return "both"


# ---------------------------------------------------------------------------------------------
# results

@dataclass(frozen=True, slots=True)
class Baseline:
    n: int                 # results kept after outlier removal
    mean: float
    sd: float              # MR̄ / d₂, in the metric's unit
    mr_bar: float
    start: str             # first and last date of the baseline window (ISO dates)
    end: str
    window_n: int          # results in the window, kept or not
    removed: tuple[str, ...] = ()   # dates of results removed as outliers

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "from": self.start, "to": self.end}


@dataclass(frozen=True, slots=True)
class Alarm:
    date: str
    rule: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"date": self.date, "rule": self.rule, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Forecast:
    breach_date: str
    limit: float
    slope_per_day: float
    interval: tuple[str, str]        # earliest and latest breach date from the slope's interval
    slope_interval: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"breach_date": self.breach_date, "limit": self.limit,
                "slope_per_day": self.slope_per_day, "interval": list(self.interval)}


@dataclass(frozen=True, slots=True)
class Chart:
    """Arrays behind the status, for plotting (segment since the last restart, valid results only)."""

    dates: np.ndarray              # datetime64[D]
    values: np.ndarray
    monitor_from: int              # index of the first result after the baseline window
    ewma: np.ndarray               # σ units, one per monitored result
    ewma_limit: np.ndarray         # ± this, σ units
    cusum_plus: np.ndarray
    cusum_minus: np.ndarray
    level: np.ndarray              # int8 per monitored result: 2 alarm rule signalling, 1 watch rule only, 0 none
    shewhart: tuple[float, float]  # x̄ ± 2.66·MR̄ in the metric's unit
    mean: float                    # baseline centre and σ (metric's unit)
    sd: float


@dataclass(frozen=True, slots=True)
class TrendStatus:
    n: int
    baseline: Baseline | None
    last: tuple[str, float] | None
    status: str
    alarms: tuple[Alarm, ...] = ()
    forecast: Forecast | None = None
    warnings: tuple[str, ...] = ()
    chart: Chart | None = field(default=None, compare=False, repr=False)

    def first_alarm(self, rules: Iterable[str] = ("ewma", "cusum")) -> str | None:
        """Date of the earliest alarm raised by any of ``rules`` (ISO date), or None."""
        rules = set(rules)
        dates = [a.date for a in self.alarms if a.rule in rules]
        return min(dates) if dates else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "last": {"date": self.last[0], "value": self.last[1]} if self.last else None,
            "status": self.status,
            "alarms": [a.to_dict() for a in self.alarms],
            "forecast": self.forecast.to_dict() if self.forecast else None,
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------------------------
# helpers

def _days(dates: Any) -> np.ndarray:
    """Dates (datetime64, date/datetime objects or ISO strings) -> datetime64[D] array."""
    a = np.asarray(dates)
    if a.dtype.kind != "M":
        a = a.astype("datetime64[D]") if a.size else np.empty(0, "datetime64[D]")
    return a.astype("datetime64[D]", copy=False)


def _iso(day: np.datetime64) -> str:
    return str(day.astype("datetime64[D]"))


def _interval(limits: Sequence[float | None] | None, what: str) -> tuple[float, float] | None:
    if limits is None:
        return None
    if len(limits) != 2:
        raise ValueError(f"{what} must be (low, high), got {limits!r}")
    lo = -math.inf if limits[0] is None else float(limits[0])
    hi = math.inf if limits[1] is None else float(limits[1])
    if lo > hi:
        raise ValueError(f"{what} low bound {lo} is above the high bound {hi}")
    return lo, hi


def baseline_estimate(values: np.ndarray, *, d2: float = 1.128, outlier_k: float = 3.0,
                      max_iter: int = 10) -> tuple[float, float, float, np.ndarray]:
    """Centre and σ of a baseline with iterative outlier removal.

    σ = MR̄/d₂ (Montgomery 2019 eq. 6.33), MR̄ over consecutive kept values; points beyond
    x̄ ± ``outlier_k``·σ are dropped and the estimate repeated until stable (Phase I revised
    limits, Montgomery §6.4).  Returns ``(mean, sd, mr_bar, kept_mask)``; ``sd`` is NaN with
    fewer than two kept values.
    """
    x = np.asarray(values, dtype=float)
    keep = np.ones(x.size, bool)
    mean = sd = mr = math.nan
    for _ in range(max(1, max_iter) + 1):
        v = x[keep]
        if v.size < 2:
            mean = float(v.mean()) if v.size else math.nan
            sd = mr = math.nan
            break
        mean = float(v.mean())
        mr = float(np.abs(np.diff(v)).mean())
        sd = mr / d2
        new = keep & (np.abs(x - mean) <= outlier_k * sd)
        if new.sum() == keep.sum() or new.sum() < 2:
            break
        keep = new
    return mean, sd, mr, keep


# ---------------------------------------------------------------------------------------------

def evaluate(dates: Any, values: Any, *, direction: str = "both",
             tolerance: Sequence[float | None] | None = None,
             action: Sequence[float | None] | None = None,
             restarts: Iterable[Any] = (), baseline_n: int | None = None,
             today: Any = None, stale_after_days: float | None = None,
             params: SpcParams | None = None) -> TrendStatus:
    """Drift status of one metric's history.

    Parameters
    ----------
    dates, values
        Acquisition dates (datetime64, ``date``/``datetime`` or ISO strings; day resolution) and
        values in the metric's unit.  Non-finite values are ignored (with a warning).
    direction
        "up", "down" or "both": which side of the control charts may signal
        (:func:`metric_direction`).
    tolerance, action
        ``(low, high)`` limits in the metric's unit (None for an open end), from the criteria table.
    restarts
        Event dates (PM, calibration, tube, coil, software, phantom): the baseline restarts at the
        latest one; results on or after it form the evaluated segment.
    baseline_n
        Results in the baseline (default ``params.baseline_n``, 20).
    today, stale_after_days
        Staleness: no result within ``stale_after_days`` days before ``today`` (default: the
        current date) -> "stale".  No check when ``stale_after_days`` is None.
    params
        :class:`SpcParams` (default: ``iqa/criteria/spc.toml``).

    Returns
    -------
    TrendStatus
        ``n`` counts the valid results since the last restart.  See the module docstring for the
        rules, the alarm list and the status precedence.
    """
    restarts = list(restarts)
    day = _days(dates)
    if day.ndim != 1:
        day = day.ravel()
    last_restart = _days(restarts).max() if restarts else np.datetime64("NaT", "D")
    return evaluate_batch([0, day.size], day, values, directions=(direction,),
                          tolerances=None if tolerance is None else [_interval(tolerance, "tolerance")],
                          actions=None if action is None else [_interval(action, "action")],
                          restarts=[last_restart], baseline_n=baseline_n, today=today,
                          stale_after_days=stale_after_days, params=params)[0]


def evaluate_batch(offsets: Sequence[int], dates: Any, values: Any, *,
                   directions: str | Sequence[str] = "both",
                   tolerances: Any = None, actions: Any = None, restarts: Any = None,
                   baseline_n: int | None = None, today: Any = None,
                   stale_after_days: float | Sequence[float] | None = None,
                   params: SpcParams | None = None) -> list[TrendStatus]:
    """:func:`evaluate` for many series at once (one compiled pass; what ``iqa trend`` should use).

    Series ``i`` is ``dates[offsets[i]:offsets[i + 1]]``, ``values[...]`` (``offsets`` has one
    more entry than there are series).  ``directions``: one for all or one per series.
    ``tolerances``, ``actions``: None, or one ``(low, high)`` per series (NaN pair = none for that
    series; ±inf or None = open end).  ``restarts``: None or one date per series (the latest event;
    NaT/None = none).  ``stale_after_days``: None, a number, or one per series (NaN = no check).
    Returns one :class:`TrendStatus` per series, identical to calling :func:`evaluate` on each.
    """
    from iqa.kernels import spc

    p = params if params is not None else _builtin()[0]
    bn = p.baseline_n if baseline_n is None else int(baseline_n)
    if bn < 2:
        raise ValueError(f"baseline_n must be at least 2, got {bn}")
    off = np.asarray(offsets, dtype=np.int64)
    day = _days(dates).ravel()
    x = np.asarray(values, dtype=float).ravel()
    if day.shape != x.shape:
        raise ValueError(f"{day.size} dates but {x.size} values")
    ns = off.size - 1
    if ns < 0 or off[0] != 0 or off[-1] != x.size or (np.diff(off) < 0).any():
        raise ValueError(f"offsets must rise from 0 to the number of values ({x.size})")
    if isinstance(directions, str):
        directions = (directions,) * ns
    if len(directions) != ns:
        raise ValueError(f"{len(directions)} directions for {ns} series")
    bad = set(directions) - set(DIRECTIONS)
    if bad:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {sorted(bad)!r}")
    tol = _limits(tolerances, ns, "tolerances")
    act = _limits(actions, ns, "actions")

    sid = np.repeat(np.arange(ns), np.diff(off))
    dnum = day.astype(np.int64)
    if x.size > 1:
        same = sid[1:] == sid[:-1]
        if (same & (dnum[1:] < dnum[:-1])).any():
            order = np.lexsort((dnum, sid))
            day, dnum, x = day[order], dnum[order], x[order]
    finite = np.isfinite(x)
    dropped = None
    if not finite.all():
        dropped = np.bincount(sid[~finite], minlength=ns)
        day, dnum, x, sid = day[finite], dnum[finite], x[finite], sid[finite]
        off = np.concatenate(([0], np.cumsum(np.bincount(sid, minlength=ns))))
    starts = off[:-1].copy()
    rdays = None
    if restarts is not None:
        rdays = _days([np.datetime64("NaT") if r is None else r for r in restarts]).ravel()
        if rdays.size != ns:
            raise ValueError(f"{rdays.size} restarts for {ns} series")
        has = ~np.isnat(rdays)
        if has.any():
            lo = int(min(dnum.min(initial=0), rdays[has].astype(np.int64).min()))
            span = int(max(dnum.max(initial=0), rdays[has].astype(np.int64).max())) - lo + 2
            key = sid * span + (dnum - lo)
            idx = np.flatnonzero(has)
            starts[idx] = np.searchsorted(key, idx * span + (rdays[idx].astype(np.int64) - lo))
    stale = None
    if stale_after_days is not None:
        stale = np.broadcast_to(np.asarray(stale_after_days, dtype=float), (ns,))
        ref = int((np.datetime64(date.today(), "D") if today is None else _days([today])[0]).astype(np.int64))

    up = np.array([d != "down" for d in directions], dtype=np.bool_)
    down = np.array([d != "up" for d in directions], dtype=np.bool_)
    min_kept = max(2, math.ceil(p.baseline_min_fraction * bn))
    zc = _Z_975 if p.forecast_confidence == 0.95 else _norm_ppf(0.5 + p.forecast_confidence / 2)
    summary, events, keep, ewma, elim, cp, cm, level = spc.scan_batch(
        off, starts, x, dnum.astype(float), bn, p.d2, p.outlier_k, p.outlier_max_iter, min_kept,
        p.shewhart_k, p.shewhart_alarm, p.ewma_lambda, p.ewma_L, p.ewma_limits == "exact",
        p.ewma_baseline_variance, p.cusum_k, p.cusum_h, p.cusum_headstart, p.western_electric,
        p.watch_memory, up, down, tol[0], tol[1], act[0], act[1], p.forecast_window,
        p.forecast_min_n, zc)

    iso = _day_iso
    ev_list = events.tolist()
    ev_from = np.searchsorted(events[:, 0], np.arange(ns + 1)).tolist() if ns else [0]
    rows = summary.tolist()
    dn = dnum.tolist()
    shew_k = p.shewhart_k
    starts_l, ends_l = starts.tolist(), off[1:].tolist()
    last_idx = np.maximum(off[1:] - 1, 0)
    last_v = x[last_idx].tolist() if x.size else [0.0] * ns
    tol_l = [(lo, hi) if g else None for lo, hi, g in zip(*(v.tolist() for v in tol))]
    act_l = [(lo, hi) if g else None for lo, hi, g in zip(*(v.tolist() for v in act))]
    dropped_l = dropped.tolist() if dropped is not None else None
    restart_l = ([None if np.isnat(r) else _iso(r) for r in rdays] if rdays is not None else None)
    stale_l = stale.tolist() if stale is not None else None
    out = []
    for i in range(ns):
        a, b = starts_l[i], ends_l[i]
        n = b - a
        warnings: list[str] = []
        if dropped_l is not None and dropped_l[i]:
            warnings.append(f"{dropped_l[i]} non-finite value(s) ignored")
        if restart_l is not None and restart_l[i] is not None:
            warnings.append(f"baseline restarted at event {restart_l[i]}")
        last = (iso(dn[b - 1]), last_v[i]) if n else None
        s = rows[i]
        ti = tol_l[i]
        ai = act_l[i]
        baseline = chart = None
        insufficient = n < bn
        if insufficient:
            warnings.append(f"baseline needs {bn} results since the last event, have {n}")
        else:
            mean, sd, mr, kept = s[1], s[2], s[3], int(s[4])
            removed = ()
            if kept < bn:
                removed = tuple(iso(dn[a + k]) for k in np.flatnonzero(~keep[a:a + bn]).tolist())
                warnings.append(f"baseline: {len(removed)} outlier(s) removed ({', '.join(removed)})")
            baseline = Baseline(kept, mean, sd, mr, iso(dn[a]), iso(dn[a + bn - 1]), bn, removed)
            if kept < min_kept:
                insufficient = True
                warnings.append(f"baseline: only {kept} of {bn} results kept after outlier removal "
                                f"(need {min_kept}); the baseline period was unstable, record an event "
                                f"after fixing it")
            elif not sd > 0:
                warnings.append(f"baseline has no variation (all {kept} values {mean:.4g}); "
                                f"control charts skipped")
            else:
                c = a + bn
                chart = Chart(day[a:b], x[a:b], bn, ewma[c:b], elim[c:b], cp[c:b], cm[c:b], level[c:b],
                              (mean - shew_k * mr, mean + shew_k * mr), mean, sd)
        alarms: tuple[Alarm, ...] = ()
        if ev_from[i + 1] > ev_from[i]:
            found = [_alarm(j, r, j - a, iso(dn[j]), x, chart, ti, ai, p)
                     for _, j, r in ev_list[ev_from[i]:ev_from[i + 1]]]
            found.sort(key=lambda al: (al.date, _RULE_ORDER[al.rule]))
            alarms = tuple(found)
        forecast = None
        if s[10] > 0 or s[11] < 0:
            forecast = _forecast(s, day[b - 1], directions[i], ti, ai, p)
        is_stale = False
        if stale_l is not None and not math.isnan(stale_l[i]):
            if n == 0:
                is_stale = True
                warnings.append("no results to judge staleness by")
            else:
                age = ref - dn[b - 1]
                if age > stale_l[i]:
                    is_stale = True
                    warnings.append(f"no result for {age} days (limit {stale_l[i]:g})")
        if is_stale:
            status = "stale"
        elif s[5]:
            status = "out_of_tolerance"
        elif insufficient:
            status = "insufficient"
        elif s[6]:
            status = "alarm"
        elif s[7]:
            status = "watch"
        else:
            status = "ok"
        out.append(TrendStatus(n, baseline, last, status, alarms, forecast, tuple(warnings), chart))
    return out


@functools.lru_cache(maxsize=65536)
def _day_iso(day: int) -> str:
    """ISO date of a day number (days since 1970-01-01)."""
    return (_EPOCH + timedelta(days=day)).isoformat()


_EPOCH = date(1970, 1, 1)


def _limits(limits: Any, ns: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-series (low, high, given) arrays; NaN pair or None -> not given; None end -> open."""
    lo = np.full(ns, -np.inf)
    hi = np.full(ns, np.inf)
    given = np.zeros(ns, bool)
    if limits is None:
        return lo, hi, given
    if isinstance(limits, np.ndarray) and limits.dtype.kind == "f":
        if limits.shape != (ns, 2):
            raise ValueError(f"{what} must have shape ({ns}, 2), got {limits.shape}")
        none = np.isnan(limits[:, 0]) & np.isnan(limits[:, 1])
        if (np.isnan(limits).any(axis=1) & ~none).any():
            raise ValueError(f"{what}: a bound is NaN; use ±inf for an open end")
        if (limits[:, 0] > limits[:, 1]).any():
            raise ValueError(f"{what}: a low bound is above its high bound")
        return (np.where(none, -np.inf, limits[:, 0]), np.where(none, np.inf, limits[:, 1]), ~none)
    rows = list(limits)
    if len(rows) != ns:
        raise ValueError(f"{len(rows)} {what} for {ns} series")
    for i, row in enumerate(rows):
        if row is None:
            continue
        pair = _interval(row, what)
        if pair is None or (math.isnan(pair[0]) and math.isnan(pair[1])):
            continue
        if math.isnan(pair[0]) or math.isnan(pair[1]):
            raise ValueError(f"{what}[{i}]: a bound is NaN; use None or ±inf for an open end")
        lo[i], hi[i] = pair
        given[i] = True
    return lo, hi, given


_WE_TEXT = {"we2": "2 of 3 beyond 2σ", "we3": "4 of 5 beyond 1σ", "we4": "8 in a row on one side"}


def _alarm(i: int, code: int, k: int, when: str, x, chart: Chart | None, tol, act, p: SpcParams) -> Alarm:
    """Alarm for result ``i`` of the batch (``k`` within its segment) raised by rule ``code``."""
    rule = _RULES[code]
    v = x[i]
    if rule in LIMIT_RULES:
        lo, hi = tol if rule == "tolerance" else act
        side, bound = ("above", hi) if v > hi else ("below", lo)
        detail = f"{v:.4g} {side} {rule} limit {bound:.4g}"
    else:
        j = k - chart.monitor_from
        if rule == "shewhart":
            lo, hi = chart.shewhart
            detail = f"{v:.4g} outside x̄ ± {p.shewhart_k:g}·MR̄ [{lo:.4g}, {hi:.4g}]"
        elif rule == "ewma":
            detail = (f"EWMA {chart.ewma[j]:+.2f}σ beyond ±{chart.ewma_limit[j]:.2f}σ "
                      f"(λ {p.ewma_lambda:g}, L {p.ewma_L:g})")
        elif rule == "cusum":
            which, c = (("C+", chart.cusum_plus[j]) if chart.cusum_plus[j] > p.cusum_h
                        else ("C-", chart.cusum_minus[j]))
            detail = f"CUSUM {which} {c:.2f} > h {p.cusum_h:g} (k {p.cusum_k:g})"
        else:
            detail = f"{_WE_TEXT[rule]} (z {(v - chart.mean) / chart.sd:+.2f})"
    return Alarm(when, rule, detail)


def _forecast(summary, last_day, direction, tol, act, p: SpcParams) -> Forecast | None:
    """Breach date from the Theil–Sen fit computed by the kernel (module docstring)."""
    lo, hi = float(summary[10]), float(summary[11])
    if not (lo > 0 or hi < 0):            # NaN (not computed) is also "no forecast"
        return None
    slope, icpt, t_med, y_med = float(summary[8]), float(summary[9]), float(summary[12]), float(summary[13])
    rising = slope > 0
    if (rising and direction == "down") or (not rising and direction == "up"):
        return None
    limits = tol if tol is not None else act
    if limits is None:
        return None
    bound = limits[1] if rising else limits[0]
    if not math.isfinite(bound):
        return None
    when = (bound - icpt) / slope                          # days after the latest result
    if when <= 0 or when > p.forecast_horizon_days:
        return None
    ends = sorted(t_med + (bound - y_med) / s for s in (lo, hi))

    def at(days_after: float) -> str:
        return _iso(last_day + np.timedelta64(int(math.ceil(max(days_after, 0.0))), "D"))

    return Forecast(at(when), bound, slope, (at(ends[0]), at(ends[1])), (lo, hi))


def _norm_ppf(q: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(q))
