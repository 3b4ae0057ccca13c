"""The drift report: one self-contained HTML file with a status overview and control charts.

The file needs nothing else: no network, no CDN, no script.  Charts are inline SVG written
here directly: for a few hundred small line charts that is simpler and far faster than
matplotlib (no figure objects, no PNG encoding, crisp at any zoom, text stays selectable), and
it keeps the report under a few seconds for 20 scanners x 10 metrics x 1 year.

Every string that came from DICOM (station, model, serial, kernel, coil ...) or from the
store passes through :func:`html.escape` before it is written, and a Content-Security-Policy
forbids scripts and network access, so a hostile StationName cannot execute anything.

Chart contents (Shewhart individuals chart, NIST/SEMATECH e-Handbook 6.3.2):
* points in acquisition order; the tolerance band shaded green (outside it pale red) and the
  action limits as red lines, from the criteria tables;
* the current baseline mean (solid) and control limits mean ± 3σ, σ = MR̄/1.128, i.e.
  x̄ ± 2.66·MR̄ (dashed), drawn from the start of the baseline;
* service events as grey vertical lines; alarms ringed (red, "watch" rules orange) with the
  rule and detail as a tooltip; the forecast as a dashed line to the predicted breach date
  with its interval.
"""
from __future__ import annotations

import datetime as dt
import html
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from iqa.errors import IqaError

#: Status severity, worst first (the overview shows a scanner's worst).
SEVERITY = ("out_of_tolerance", "alarm", "stale", "watch", "insufficient", "ok")
STATUS_LABEL = {"out_of_tolerance": "out of tolerance", "alarm": "alarm", "stale": "stale", "watch": "watch",
                "insufficient": "baseline too short", "ok": "ok"}
STATUS_COLOUR = {"out_of_tolerance": "#b00020", "alarm": "#d9480f", "stale": "#6c757d", "watch": "#e0a800",
                 "insufficient": "#6c757d", "ok": "#2b8a3e"}
#: Rules drawn red (alarm); any other rule (Western Electric tests, and Shewhart points unless
#: ``shewhart_alarm`` is set in spc.toml) is a "watch" signal, drawn amber.
ALARM_RULES = ("ewma", "cusum", "tolerance", "action")


def _red_rules() -> tuple[str, ...]:
    try:
        from iqa.drift import load_params
        return ALARM_RULES + (("shewhart",) if load_params().shewhart_alarm else ())
    except (ImportError, AttributeError):
        return ALARM_RULES + ("shewhart",)

# Chart geometry (px).
WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 34

CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#212529;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:14px;margin:18px 0 4px;font-weight:600}
table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:3px 10px;border-bottom:1px solid #e9ecef;text-align:left;vertical-align:top}
th{background:#f8f9fa}td.num{text-align:right;font-variant-numeric:tabular-nums}td.date{white-space:nowrap}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px;white-space:nowrap}
.muted{color:#6c757d}.chart{display:block;margin:2px 0 6px}.meta{font-size:12px;color:#495057}
svg text{font:11px system-ui,sans-serif;fill:#495057}
.legend span{margin-right:14px;white-space:nowrap}
"""


def e(text: Any) -> str:
    """HTML-escape anything (quotes too, so it is safe inside attributes)."""
    return html.escape("" if text is None else str(text), quote=True)


def _badge(status: str) -> str:
    return (f'<span class="badge" style="background:{STATUS_COLOUR.get(status, "#6c757d")}">'
            f'{e(STATUS_LABEL.get(status, status))}</span>')


def _worst(statuses: Sequence[str]) -> str:
    rank = {s: i for i, s in enumerate(SEVERITY)}
    return min(statuses, key=lambda s: rank.get(s, len(SEVERITY)), default="ok")


def mean_sd(mean: float, sd: float) -> str:
    """``mean ± sd`` with the mean to the SD's second significant digit."""
    if sd > 0 and math.isfinite(sd):
        places = max(0, 1 - math.floor(math.log10(sd)))
        return f"{mean:.{places}f} \u00b1 {sd:.{places}f}"
    return f"{_fmt(mean)} \u00b1 {_fmt(sd)}"


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return ""
    return f"{x:.{digits}g}"


# --------------------------------------------------------------------------- chart

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _parse_day(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value.toordinal()
    try:
        return dt.date.fromisoformat(str(value)[:10]).toordinal()
    except ValueError:
        return None


def chart_svg(t: dict[str, Any], days: np.ndarray, values: np.ndarray, *, title: str = "",
              red_rules: Sequence[str] = ALARM_RULES + ("shewhart",)) -> str:
    """One control chart as an inline ``<svg>`` string (all text escaped)."""
    status = t.get("status", "ok")
    base = t.get("baseline") or None
    limits = t.get("limits") or {}
    tol = limits.get("tolerance")
    act = limits.get("action")
    fc = t.get("forecast") or None
    x0, x1 = int(days[0]), int(days[-1])
    span = max(x1 - x0, 1)
    fc_day = _parse_day(fc.get("breach_date")) if fc else None
    if fc_day is not None:
        x1 = max(x1, min(fc_day, int(days[-1]) + max(30, span // 3)))
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    ys = [float(values.min()), float(values.max())]
    if base:
        ys += [base["mean"] - 3 * base["sd"], base["mean"] + 3 * base["sd"]]
    if tol:
        ys += [v for v in tol if v is not None]
    if fc and fc.get("limit") is not None:
        ys.append(float(fc["limit"]))
    data_span = max(ys) - min(ys)
    if act:  # action limits only when they do not squash the data
        ys += [v for v in act if v is not None and abs(v - float(np.median(values))) < 3 * max(data_span, 1e-9)]
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.06 or max(abs(y0) * 0.05, 1.0)
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def X(d):
        return LEFT + (np.asarray(d, dtype=np.float64) - x0) * (pw / (x1 - x0))

    def Y(v):
        return TOP + (y1 - np.asarray(v, dtype=np.float64)) * (ph / (y1 - y0))

    def clampy(v):
        return float(np.clip(Y(v), TOP, TOP + ph))

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{e(title)}" data-status="{e(status)}">',
           f'<title>{e(title)}</title>']
    # Tolerance band: green inside, pale red outside.
    if tol:
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fbeaea"/>')
        top = clampy(tol[1]) if tol[1] is not None else TOP
        bot = clampy(tol[0]) if tol[0] is not None else TOP + ph
        out.append(f'<rect class="tolerance" x="{LEFT}" y="{top:.1f}" width="{pw}" height="{max(bot - top, 0):.1f}" '
                   f'fill="#e8f5e9"><title>tolerance {e(_fmt(tol[0]))} .. {e(_fmt(tol[1]))}</title></rect>')
    else:
        out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fcfcfc"/>')
    # Axes and ticks.
    for v in _nice_ticks(y0, y1):
        yy = float(Y(v))
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e9ecef"/>'
                   f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">{e(_fmt(v, 3))}</text>')
    for d in _date_ticks(x0, x1):
        xx = float(X(d))
        out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 4}" stroke="#868e96"/>'
                   f'<text x="{xx:.1f}" y="{TOP + ph + 16}" text-anchor="middle">'
                   f'{e(dt.date.fromordinal(d).strftime("%Y-%m-%d"))}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#adb5bd"/>')
    # Action limits.
    for v in (act or ()):
        if v is not None and y0 <= v <= y1:
            yy = float(Y(v))
            out.append(f'<line class="action" x1="{LEFT}" x2="{LEFT + pw}" y1="{yy:.1f}" y2="{yy:.1f}" '
                       f'stroke="#c92a2a" stroke-width="1.2"><title>action limit {e(_fmt(v))}</title></line>')
    # Events.
    for ev in t.get("events") or ():
        d = _parse_day(ev)
        if d is not None and x0 <= d <= x1:
            xx = float(X(d))
            out.append(f'<line class="event" x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#868e96" '
                       f'stroke-dasharray="2 3"><title>service event {e(ev)}</title></line>')
    # Baseline mean and control limits (x̄ ± 3σ = x̄ ± 2.66 MR̄).
    if base:
        b0 = _parse_day(base.get("from")) or x0
        bx0, bx1 = float(X(max(b0, x0))), float(X(int(days[-1])))
        m, s = float(base["mean"]), float(base["sd"])
        out.append(f'<line class="baseline" x1="{bx0:.1f}" x2="{bx1:.1f}" y1="{float(Y(m)):.1f}" y2="{float(Y(m)):.1f}" '
                   f'stroke="#1c7ed6" stroke-width="1.4"><title>baseline mean {e(_fmt(m))} '
                   f'(n={e(base.get("n"))}, {e(base.get("from"))} .. {e(base.get("to"))})</title></line>')
        for v, name in ((m + 3 * s, "upper"), (m - 3 * s, "lower")):
            if y0 <= v <= y1:
                out.append(f'<line class="control" x1="{bx0:.1f}" x2="{bx1:.1f}" y1="{float(Y(v)):.1f}" '
                           f'y2="{float(Y(v)):.1f}" stroke="#1c7ed6" stroke-dasharray="5 3">'
                           f'<title>{name} control limit {e(_fmt(v))}</title></line>')
    # Data: a thin polyline and dots (one path, zero-length segments with round caps).
    xs, yv = X(days), Y(values)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs.tolist(), yv.tolist()))
    out.append(f'<polyline class="data" points="{pts}" fill="none" stroke="#adb5bd" stroke-width="1"/>')
    dots = "".join(f"M{a:.1f} {b:.1f}h0" for a, b in zip(xs.tolist(), yv.tolist()))
    out.append(f'<path class="points" d="{dots}" stroke="#343a40" stroke-width="4" stroke-linecap="round"/>')
    # Forecast.
    if fc and fc_day is not None and fc.get("limit") is not None and fc.get("slope_per_day") is not None:
        lim, slope = float(fc["limit"]), float(fc["slope_per_day"])
        d_last = int(days[-1])
        fx0, fy0 = float(X(d_last)), float(Y(lim + slope * (d_last - fc_day)))
        d_end = min(fc_day, x1)
        fx1, fy1 = float(X(d_end)), float(Y(lim + slope * (d_end - fc_day)))
        out.append(f'<line class="forecast" x1="{fx0:.1f}" y1="{fy0:.1f}" x2="{fx1:.1f}" y2="{fy1:.1f}" '
                   f'stroke="#ae3ec9" stroke-width="1.6" stroke-dasharray="6 4"><title>forecast: '
                   f'{e(_fmt(slope, 3))} per day, limit {e(_fmt(lim))} reached {e(fc.get("breach_date"))}</title></line>')
        interval = fc.get("interval") or ()
        if len(interval) == 2:
            lo, hi = _parse_day(interval[0]), _parse_day(interval[1])
            if lo is not None and hi is not None and y0 <= lim <= y1:
                ix0, ix1 = float(X(max(lo, x0))), float(X(min(hi, x1)))
                yy = float(Y(lim))
                out.append(f'<line class="forecast-interval" x1="{ix0:.1f}" x2="{ix1:.1f}" y1="{yy:.1f}" '
                           f'y2="{yy:.1f}" stroke="#ae3ec9" stroke-width="4" stroke-opacity="0.45">'
                           f'<title>breach interval {e(interval[0])} .. {e(interval[1])}</title></line>')
    # Alarms: ring the point of that day.
    index = {int(d): i for i, d in enumerate(days.tolist())}
    for a in t.get("alarms") or ():
        d = _parse_day(a.get("date"))
        if d is None or d not in index:
            continue
        i = index[d]
        rule = str(a.get("rule", ""))
        colour = "#e03131" if rule.lower() in red_rules else "#e0a800"
        out.append(f'<circle class="alarm" cx="{float(xs[i]):.1f}" cy="{float(yv[i]):.1f}" r="6" fill="none" '
                   f'stroke="{colour}" stroke-width="2"><title>{e(a.get("date"))} {e(rule)}: '
                   f'{e(a.get("detail", ""))}</title></circle>')
    out.append("</svg>")
    return "".join(out)


def _date_ticks(x0: int, x1: int, n: int = 6) -> list[int]:
    """Ordinals of round dates between x0 and x1: days, Mondays every 1-2 weeks, or month starts."""
    span = x1 - x0
    if span <= 2 * n:
        return list(range(x0, x1 + 1, max(1, span // n)))
    if span <= 20 * n:
        step = 7 * max(1, math.ceil(span / (7 * n)))
        first = x0 + (-dt.date.fromordinal(x0).weekday()) % 7        # the first Monday
        return list(range(first, x1 + 1, step))
    d0 = dt.date.fromordinal(x0)
    months = (dt.date.fromordinal(x1).year - d0.year) * 12 + dt.date.fromordinal(x1).month - d0.month
    every = max(1, math.ceil(months / n))
    out, k = [], 0 if d0.day == 1 else 1
    while True:
        m = d0.month - 1 + k
        d = dt.date(d0.year + m // 12, m % 12 + 1, 1).toordinal()
        if d > x1:
            return out
        if (d0.year * 12 + d0.month - 1 + k) % every == 0:
            out.append(d)
        k += 1


# --------------------------------------------------------------------------- page

def render(trends: Sequence, scanners: Sequence[dict[str, Any]], *, today: dt.date,
           store_path: str = "", generated: dt.datetime | None = None) -> str:
    """The report page for evaluated trends (:class:`iqa.trend.Trend`) and scanner identities."""
    from iqa._version import __version__

    generated = generated or dt.datetime.now(dt.timezone.utc)
    red = _red_rules()
    by_scanner: dict[str, list] = defaultdict(list)
    for t in trends:
        by_scanner[t.scanner].append(t)
    ident = {s["key"]: s for s in scanners}
    keys = sorted(set(by_scanner) | set(ident))

    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           # No scripts, no network: the file must work offline and a hostile DICOM string cannot run.
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
           "img-src data:\">",
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>iqa drift report</title>", f"<style>{CSS}</style></head><body>",
           "<h1>Image-quality drift report</h1>",
           f'<p class="meta">Store {e(store_path)} &middot; status as of {e(today.isoformat())} &middot; generated '
           f'{e(generated.isoformat(timespec="seconds"))} by iqa {e(__version__)}</p>']
    # Overview.
    out.append('<h2 id="overview">Status per scanner</h2><table class="overview"><thead><tr><th>scanner</th>'
               "<th>station</th><th>modality</th><th>status</th><th>last QC</th><th>series</th>"
               "<th>needs attention</th></tr></thead><tbody>")
    rank = {s: i for i, s in enumerate(SEVERITY)}
    worst_of = {k: _worst([t.status.get("status", "ok") for t in by_scanner[k]]) if by_scanner.get(k) else "insufficient"
                for k in keys}
    for k_i, key in sorted(enumerate(keys), key=lambda ik: (rank.get(worst_of[ik[1]], 99), ik[1])):  # worst first
        items = by_scanner.get(key, [])
        sc = ident.get(key, {})
        worst = _worst([t.status.get("status", "ok") for t in items]) if items else "insufficient"
        last = max((int(t.days[-1]) for t in items), default=None)
        attention = [t for t in items if t.status.get("status") not in ("ok", "insufficient")]
        att = ", ".join(f'<a href="#c{k_i}-{items.index(t)}">{e(t.metric)}</a> {_badge(t.status.get("status"))}'
                        for t in attention[:8])
        if len(attention) > 8:
            att += f" and {len(attention) - 8} more"
        name = " ".join(x for x in (sc.get("manufacturer"), sc.get("model"), sc.get("serial")) if x) or key
        out.append(f'<tr><td><a href="#s{k_i}">{e(key)}</a><div class="muted">{e(name)}</div></td>'
                   f'<td>{e(sc.get("station", ""))}</td><td>{e(sc.get("modality") or "")}</td><td>{_badge(worst)}</td>'
                   f'<td class="date">{e(dt.date.fromordinal(last).isoformat()) if last else ""}</td>'
                   f'<td class="num">{len(items)}</td><td>{att}</td></tr>')
    out.append("</tbody></table>")
    out.append('<p class="legend muted"><span><b style="color:#2b8a3e">&#9632;</b> tolerance band</span>'
               '<span><b style="color:#c92a2a">&#8212;</b> action limit</span>'
               '<span><b style="color:#1c7ed6">&#8212;</b> baseline mean, - - control limits (&plusmn;3&sigma;, '
               '&sigma; = MR&#773;/1.128)</span><span><b style="color:#e03131">&#9675;</b> alarm</span>'
               '<span><b style="color:#e0a800">&#9675;</b> watch</span>'
               '<span><b style="color:#ae3ec9">- -</b> forecast to breach</span>'
               '<span><b style="color:#868e96">&#8942;</b> service event</span></p>')
    # Per scanner: charts.
    for k_i, key in enumerate(keys):
        items = by_scanner.get(key, [])
        sc = ident.get(key, {})
        out.append(f'<section class="scanner"><h2 id="s{k_i}">{e(key)} <span class="muted">'
                   f'{e(sc.get("station", ""))}</span></h2>')
        if not items:
            out.append('<p class="muted">No dated results stored for this scanner.</p></section>')
            continue
        for t_i, t in enumerate(items):
            d = t.to_dict()
            unit = f" ({t.unit})" if t.unit else ""
            title = f"{t.metric}{unit} - {t.phantom} - {t.protocol}"
            b = d.get("baseline")
            last = d.get("last") or {}
            fc = d.get("forecast")
            facts = [f"n = {d.get('n')}",
                     f"last {e(last.get('date'))}: {e(_fmt(last.get('value')))}{e(unit)}"]
            if b:
                facts.append(f"baseline {e(mean_sd(b['mean'], b['sd']))} (n={e(b['n'])}, from "
                             f"{e(b.get('from'))})")
            if fc:
                facts.append(f"forecast: limit {e(_fmt(fc.get('limit')))} reached {e(fc.get('breach_date'))}")
            if d.get("alarms"):
                a = d["alarms"][-1]
                facts.append(f"{len(d['alarms'])} signal(s), latest {e(a.get('date'))} {e(a.get('rule'))}")
            out.append(f'<h3 id="c{k_i}-{t_i}">{e(t.metric)}{e(unit)} <span class="muted">{e(t.phantom)} &middot; '
                       f'{e(t.protocol)}</span> {_badge(d.get("status", "ok"))}</h3>'
                       f'<div class="meta">{" &middot; ".join(facts)}</div>')
            for w in d.get("warnings") or ():
                out.append(f'<div class="meta muted">{e(w)}</div>')
            out.append(chart_svg(d, t.days, t.values, title=title, red_rules=red))
        out.append("</section>")
    if not keys:
        out.append('<p class="muted">The store holds no results yet.</p>')
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(store, output: str | os.PathLike, *, today: dt.date | None = None, criteria=None,
                 scanner: str | None = None, baseline_n: int = 20) -> Path:
    """Evaluate the store's trends and write the HTML report atomically; return its path."""
    from iqa.trend import load

    today = today or dt.date.today()
    trends = load(store, scanner=scanner, today=today, criteria=criteria, baseline_n=baseline_n)
    scanners = [s for s in store.scanners() if scanner is None or s["key"] == scanner]
    page = render(trends, scanners, today=today, store_path=os.fspath(store.path))
    output = Path(output)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")   # same folder: os.replace is atomic
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.replace(tmp, output)
    except OSError as exc:
        if tmp.exists():
            tmp.unlink()
        raise IqaError(f"{output}: cannot write the report ({exc.strerror or exc}); "
                       f"choose another --output") from None
    return output
