"""``iqa report``: one self-contained HTML drift report from the trend store."""
from __future__ import annotations

from pathlib import Path

import click

from iqa.cli.trend import Date


@click.command()
@click.option("--store", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The trend store (SQLite) to read.")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write (replaced atomically).")
@click.option("--scanner", help="Only this scanner (key as shown by iqa trend).")
@click.option("--today", type=Date(), help="Judge staleness as of this date (default: today).")
@click.option("--baseline-n", type=click.IntRange(min=2), default=20, show_default=True,
              help="Results in a baseline after each service event.")
@click.option("--criteria", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Site criteria table (TOML) consulted before the built-in ones.")
def report(store, output, scanner, today, baseline_n, criteria) -> None:
    """Write one self-contained HTML report: status per scanner and a control chart per metric.

    \b
        iqa report --store qa.db --output drift-report.html
    """
    from iqa.criteria import Criteria
    from iqa.errors import IqaError
    from iqa.report import write_report
    from iqa.store import Store

    try:
        with Store(store) as st:
            path = write_report(st, output, today=today, criteria=Criteria.default(criteria),
                                scanner=scanner, baseline_n=baseline_n)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"report written to {path}")
