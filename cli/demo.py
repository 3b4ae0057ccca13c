"""``iqa demo``: synthetic archive with drift -> batch -> trend -> report."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-output"),
              show_default=True, help="Folder for the archive, the store and the report.")
@click.option("--days", type=click.IntRange(20, 3650), default=60, show_default=True)
@click.option("--scanners", type=click.IntRange(1, 50), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Worker processes [default: all cores].")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(output_dir, days, scanners, workers, seed) -> None:
    """Build a synthetic multi-scanner QA archive with drift, analyse it, trend it, report it.

    \b
        iqa demo                       # writes demo-output/{archive,iqa.sqlite,report.html}
    """
    from iqa.demo import run_demo
    from iqa.errors import IqaError

    from iqa.cli.batch import _Progress

    click.echo(f"iqa demo: writing a {days}-day x {scanners}-scanner archive to {output_dir / 'archive'} ...")
    bar = _Progress(True)
    try:
        out = run_demo(output_dir, days=days, scanners=scanners, seed=seed, workers=workers, progress=bar)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    click.echo(out.batch.line())
    flagged = out.alarmed
    click.echo(f"{len(out.trends)} trend series; {len(flagged)} flagged:")
    for t in flagged:
        alarms = t.get("alarms") or []
        first = {rule: next((a["date"] for a in alarms if a["rule"] in rules), None)
                 for rule, rules in (("drift", ("ewma", "cusum")), ("limit", ("tolerance", "action")))}
        parts = [t["status"]]
        if first["drift"]:
            parts.append(f"EWMA/CUSUM alarm {first['drift']}")
        if first["limit"]:
            parts.append(f"outside tolerance {first['limit']}")
        fc = t.get("forecast") or {}
        if fc.get("breach_date") and not first["limit"]:
            parts.append(f"breach forecast {fc['breach_date']}")
        click.echo(f"  {t['scanner']:<16} {t['metric']:<17} " + "; ".join(parts))
    click.echo(f"store:  {out.store}")
    click.echo(f"report: {out.report.resolve()}")
