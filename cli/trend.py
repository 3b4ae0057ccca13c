"""``iqa trend`` (drift status of every trend series) and ``iqa event`` (service events)."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

STORE = click.Path(exists=True, dir_okay=False, path_type=Path)
STATUS_MARK = {"ok": "ok", "watch": "watch", "alarm": "ALARM", "out_of_tolerance": "OUT",
               "stale": "stale", "insufficient": "short"}


class Date(click.ParamType):
    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def trend_table(trends: list[dict[str, Any]]) -> str:
    """A readable table: one line per trend series, grouped by scanner."""
    from iqa.report import mean_sd

    if not trends:
        return "no trend series in the store"
    head = ("metric", "phantom", "protocol", "n", "last", "value", "baseline", "status", "latest signal", "breach")
    lines = []
    by_scanner: dict[str, list[dict]] = {}
    for t in trends:
        by_scanner.setdefault(t["scanner"], []).append(t)
    for scanner, items in by_scanner.items():
        rows = [head]
        for t in items:
            b = t.get("baseline")
            base = f"{mean_sd(b['mean'], b['sd'])} (n={b['n']})" if b else "-"
            last = t.get("last") or {}
            alarm = t["alarms"][-1] if t.get("alarms") else None
            fc = t.get("forecast")
            rows.append((t["metric"], t["phantom"], t["protocol"], str(t["n"]), last.get("date", ""),
                         _fmt(last.get("value")), base, STATUS_MARK.get(t["status"], t["status"]),
                         f"{alarm['date']} {alarm['rule']}" if alarm else "",
                         fc["breach_date"] if fc else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines.append(scanner)
        for i, r in enumerate(rows):
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if i == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines.append("")
    return "\n".join(lines)


def trend_json(trends: list[dict[str, Any]]) -> str:
    """A JSON array, one trend object per line (the C encoder: ``indent`` would fall back to pure Python,
    several seconds for a large store)."""
    import json

    if not trends:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(t, allow_nan=False, ensure_ascii=False) for t in trends) + "\n]"


@click.command()
@click.option("--store", required=True, type=STORE, help="The trend store (SQLite) to read.")
@click.option("--scanner", help="Only this scanner (key as shown, e.g. 'Ingenia/SN42').")
@click.option("--metric", help="Only this metric (e.g. water_hu).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--today", type=Date(), help="Judge staleness as of this date (default: today).")
@click.option("--baseline-n", type=click.IntRange(min=2), default=20, show_default=True,
              help="Results in a baseline after each service event.")
@click.option("--criteria", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Site criteria table (TOML) consulted before the built-in ones.")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Keep the alarms found in the store's alarm log.")
def trend(store, scanner, metric, fmt, today, baseline_n, criteria, record) -> None:
    """Drift status of every (scanner, phantom, protocol, metric) series in the store.

    \b
        iqa trend --store qa.db
        iqa trend --store qa.db --scanner 'Revolution/CT01' --metric water_hu --format json
    """
    from iqa.criteria import Criteria
    from iqa.errors import IqaError, StoreError
    from iqa.store import Store
    from iqa.trend import trend_objects

    try:
        with Store(store) as st:
            objs = trend_objects(st, scanner=scanner, metric=metric, today=today,
                                 criteria=Criteria.default(criteria), baseline_n=baseline_n)
            if record:
                try:
                    st.record_alarms(objs)
                except StoreError as exc:
                    click.echo(f"warning: alarms not recorded: {exc}", err=True)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(trend_json(objs))
    else:
        click.echo(trend_table(objs))


@click.group()
def event() -> None:
    """Service events (pm, calibration, tube, coil, software, phantom) that restart baselines."""


@event.command("add")
@click.option("--store", required=True, type=STORE, help="The trend store.")
@click.option("--scanner", required=True, help="Scanner key as shown by iqa trend (model/serial).")
@click.option("--kind", required=True, type=click.Choice(["pm", "calibration", "tube", "coil", "software", "phantom"]))
@click.option("--date", "date", required=True, type=Date(), help="Day of the event; results from it on start a new baseline.")
@click.option("--note", default="", help="Free text (who, what was done).")
def event_add(store, scanner, kind, date, note) -> None:
    """Record a service event.

    \b
        iqa event add --store qa.db --scanner 'Revolution/CT01' --kind tube --date 2026-10-02 --note 'tube replaced'
    """
    from iqa.errors import IqaError
    from iqa.store import Store

    try:
        with Store(store) as st:
            st.add_event(scanner, kind, date, note)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{scanner}: {kind} event on {date.isoformat()} recorded")


@event.command("list")
@click.option("--store", required=True, type=STORE, help="The trend store.")
@click.option("--scanner", help="Only this scanner.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def event_list(store, scanner, fmt) -> None:
    """List service events, oldest first."""
    import json

    from iqa.errors import IqaError
    from iqa.store import Store

    try:
        with Store(store) as st:
            events = st.events(scanner)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(events, indent=2))
    elif not events:
        click.echo("no events")
    else:
        for e in events:
            click.echo(f"{e['date']}  {e['scanner']}  {e['kind']}" + (f"  {e['note']}" if e["note"] else ""))
