"""Trend evaluation over the store: glue between :mod:`iqa.store`, the criteria and :mod:`iqa.drift`.

For every trend series (scanner, phantom, protocol key, metric) this reads the current
results in acquisition order, looks up the tolerance and action limits in the criteria
tables (a ``constancy`` table first, else the accreditation one), the direction that matters
(:func:`iqa.drift.metric_direction`: noise up, SNR and MTF down), the scanner's service events
(each restarts the baseline), and hands them to :func:`iqa.drift.evaluate`, which does all the
statistics.  The result is the trend object of shared/INTERFACE.md.

Speed: :meth:`iqa.store.Store.read_series` gives every series' arrays from its cache blob, or
for series changed since, from **one** ordered scan of a covering partial index split with NumPy.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iqa.store import Store

#: Days without QC before a scanner's series are stale (issue 6: CT daily, MR monthly-ish).
STALE_AFTER_DAYS = {"CT": 14, "MR": 30}
#: ``date(1970, 1, 1).toordinal()``: ordinals -> datetime64[D] without building date objects.
_EPOCH_ORDINAL = 719163
#: Criteria purposes consulted for limits, in order.
PURPOSES = ("constancy", "accreditation")


@dataclass(frozen=True, slots=True)
class Trend:
    """One evaluated trend series: its key, its data and the drift verdict."""

    scanner: str
    phantom: str
    protocol: str
    metric: str
    modality: str
    unit: str
    days: np.ndarray                 # int64 proleptic Gregorian ordinals, ascending
    values: np.ndarray               # float64, in ``unit``
    tolerance: tuple[float | None, float | None] | None
    action: tuple[float | None, float | None] | None
    restarts: tuple[dt.date, ...]
    direction: str
    status: dict[str, Any] = field(default_factory=dict)   # TrendStatus.to_dict()

    @property
    def dates(self) -> list[dt.date]:
        return [dt.date.fromordinal(int(d)) for d in self.days]

    def to_dict(self) -> dict[str, Any]:
        """The INTERFACE trend object (plus unit, modality, direction, limits and events)."""
        out: dict[str, Any] = {"scanner": self.scanner, "phantom": self.phantom, "protocol": self.protocol,
                               "metric": self.metric}
        out.update(self.status)
        out["unit"] = self.unit
        out["modality"] = self.modality
        out["direction"] = self.direction
        limits = {}
        if self.tolerance is not None:
            limits["tolerance"] = list(self.tolerance)
        if self.action is not None:
            limits["action"] = list(self.action)
        out["limits"] = limits
        out["events"] = [d.isoformat() for d in self.restarts]
        return out


def limits_for(criteria, phantom: str, metric: str, protocol: Mapping[str, Any]):
    """(tolerance, action) for a series from the criteria tables; open ends are ``None``."""
    for purpose in PURPOSES:
        found = criteria.rule(phantom, metric, protocol, purpose=purpose)
        if found is not None:
            _, rule = found
            tol, act = rule.limits(protocol)
            return _open(tol), _open(act)
    return None, None


def _open(interval):
    if interval is None:
        return None
    lo, hi = interval
    return (None if math.isinf(lo) else float(lo), None if math.isinf(hi) else float(hi))


def _stored_limits(text: str | None):
    """Limits recorded with a result, as a fallback when no criteria table applies now."""
    try:
        d = json.loads(text or "{}")
    except ValueError:
        return None, None
    def pair(key):
        v = d.get(key)
        return (v[0], v[1]) if isinstance(v, list) and len(v) == 2 else None
    return pair("tolerance"), pair("action")


def load(store: Store, *, scanner: str | None = None, metric: str | None = None,
         today: dt.date | None = None, criteria=None, baseline_n: int = 20) -> list[Trend]:
    """Evaluate every trend series in ``store`` (optionally one scanner and/or metric).

    Parameters
    ----------
    today : the date staleness is judged against (default: the system date).
    criteria : an :class:`iqa.criteria.Criteria` (default: the built-in tables, or ``IQA_CRITERIA``).
    baseline_n : results in a baseline after each restart (issue 6 default 20).
    """
    from iqa import drift
    from iqa.criteria import Criteria

    criteria = criteria or Criteria.default()
    today = today or dt.date.today()
    con = store.connection
    where, args = [], []
    if scanner:
        where.append("sc.key = ?")
        args.append(scanner)
    if metric:
        where.append("st.metric = ?")
        args.append(metric)
    streams = con.execute(
        "SELECT st.id, sc.id, sc.key, st.phantom, st.protocol_key, st.metric, st.unit, st.modality, st.protocol "
        "FROM streams st JOIN scanners sc ON sc.id = st.scanner_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY sc.key, st.phantom, st.protocol_key, st.metric", args).fetchall()
    if not streams:
        return []
    events: dict[int, list[dt.date]] = defaultdict(list)
    for sid, date in con.execute("SELECT scanner_id, date FROM events ORDER BY date"):
        events[sid].append(dt.date.fromisoformat(date))

    data = store.read_series([s[0] for s in streams] if (scanner or metric) else None)

    todo = []
    for stream_id, sid, skey, phantom, pkey, name, unit, modality, ptext in streams:
        days, values = data.get(stream_id, (np.empty(0, np.int64), np.empty(0)))
        if days.size == 0:
            continue
        protocol = json.loads(ptext)
        tol, act = limits_for(criteria, phantom, name, protocol)
        if tol is None and act is None:
            row = con.execute("SELECT limits FROM results INDEXED BY results_trend WHERE stream_id = ? "
                              "AND current = 1 AND day IS NOT NULL ORDER BY acquired DESC LIMIT 1",
                              (stream_id,)).fetchone()
            tol, act = _stored_limits(row[0] if row else None)
        todo.append(Trend(skey, phantom, pkey, name, modality, unit, days, values, tol, act,
                          tuple(events.get(sid, ())), drift.metric_direction(name)))
    if not todo:
        return []
    stale = [STALE_AFTER_DAYS.get(t.modality) for t in todo]
    batch = getattr(drift, "evaluate_batch", None)
    if batch is not None:
        # One compiled pass over every series (drift.evaluate_batch); the baseline restarts at the
        # latest event, as evaluate() does with the full list.
        sizes = np.array([t.days.size for t in todo])
        none = (math.nan, math.nan)
        statuses = batch(np.concatenate(([0], np.cumsum(sizes))),
                         (np.concatenate([t.days for t in todo]) - _EPOCH_ORDINAL).astype("datetime64[D]"),
                         np.concatenate([t.values for t in todo]),
                         directions=[t.direction for t in todo],
                         tolerances=[t.tolerance or none for t in todo],
                         actions=[t.action or none for t in todo],
                         restarts=[max(t.restarts) if t.restarts else None for t in todo],
                         baseline_n=baseline_n, today=today,
                         stale_after_days=[math.nan if d is None else float(d) for d in stale])
    else:
        statuses = [drift.evaluate((t.days - _EPOCH_ORDINAL).astype("datetime64[D]"), t.values,
                                   direction=t.direction, tolerance=t.tolerance, action=t.action,
                                   restarts=t.restarts, baseline_n=baseline_n, today=today,
                                   stale_after_days=d) for t, d in zip(todo, stale)]
    out = [dataclasses.replace(t, status=st.to_dict()) for t, st in zip(todo, statuses)]
    return out
    return out


def trend_objects(store: Store, **kwargs) -> list[dict[str, Any]]:
    """:func:`load` as INTERFACE trend objects (``iqa trend --format json``)."""
    return [t.to_dict() for t in load(store, **kwargs)]
