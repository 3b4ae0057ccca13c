"""``iqa analyze``: measure every phantom series under the given paths."""
from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--phantom", default="auto", show_default=True,
              help="Phantom name (water, acr-ct-464, catphan-604, acr-mri-large, mr-flood, mr-grid) or auto.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout.")
@click.option("--store", type=click.Path(dir_okay=False, path_type=Path), help="Also record the results in this trend store.")
@click.option("--criteria", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Site criteria table (TOML) consulted before the built-in ones.")
@click.pass_context
def analyze(ctx: click.Context, paths, phantom, fmt, output, store, criteria) -> None:
    """Measure every phantom series under PATHS and judge it against criteria.

    \b
        iqa analyze qa/2026-11-26 --format table
        iqa analyze acq1/ acq2/ --format json       # two acquisitions: NEMA subtraction SNR
    """
    from iqa.analysis import analyze_paths, canonical
    from iqa.criteria import Criteria
    from iqa.errors import IqaError

    from iqa.cli.output import render

    try:
        canonical(phantom)
        crit = Criteria.default(criteria)
        outcome = analyze_paths(paths, phantom=phantom, criteria=crit)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    dicts = [r.to_dict(curves=(fmt == "json")) for r in outcome.results]
    text = render(dicts, fmt)
    if output:
        output.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
    else:
        click.echo(text)
    if store and outcome.results:
        try:
            from iqa.store import Store
            with Store(store) as st:
                st.add_results(outcome.results)     # all or nothing, like a batch task
        except IqaError as exc:
            raise click.ClickException(str(exc)) from None
    for f in outcome.failures:
        click.echo(f"error: {f}", err=True)
    if not outcome.results and not outcome.failures:
        click.echo("error: no CT or MR image series found under the given paths", err=True)
        ctx.exit(1)
    ctx.exit(1 if outcome.failures else 0)
