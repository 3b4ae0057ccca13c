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
        first = t["alarms"][0] if t.get("alarms") else {}
        fc = t.get("forecast") or {}
        extra = f", tolerance breach forecast {fc['breach_date']}" if fc.get("breach_date") else ""
        since = f" since {first['date']} ({first['rule']})" if first else ""
        click.echo(f"  {t['scanner']:<24} {t['metric']:<16} {t['status']}{since}{extra}")
    click.echo(f"store:  {out.store}")
    click.echo(f"report: {out.report.resolve()}")
