"""``iqa pull``: find phantom studies on an Orthanc server and analyse them into the store."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click


@click.command()
@click.option("--orthanc", "url", required=True, help="Orthanc base URL, e.g. http://pacs:8042")
@click.option("--store", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Trend store (SQLite file).")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="First study date (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Last study date (YYYY-MM-DD).")
@click.option("--description", help="Regular expression the SeriesDescription must match (e.g. 'ACR|QA').")
@click.option("--station", help="Regular expression the StationName must match.")
@click.option("--user", envvar="IQA_ORTHANC_USER", help="HTTP user (or IQA_ORTHANC_USER).")
@click.option("--password", envvar="IQA_ORTHANC_PASSWORD", help="HTTP password (or IQA_ORTHANC_PASSWORD).")
@click.pass_context
def pull(ctx, url, store, since, until, description, station, user, password) -> None:
    """Pull phantom series from Orthanc (REST API) and analyse them into the store.

    \b
        iqa pull --orthanc http://pacs:8042 --store qa.sqlite --since 2026-01-01 --description ACR
    """
    from iqa.errors import IqaError
    from iqa.pull import pull as run

    try:
        summary = run(url, store, since=since.date() if isinstance(since, datetime) else None,
                      until=until.date() if isinstance(until, datetime) else None,
                      description=description, station=station, user=user, password=password)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    for f in summary.failures:
        click.echo(f"error: {f}", err=True)
    click.echo(summary.line())
    ctx.exit(1 if summary.failures else 0)
