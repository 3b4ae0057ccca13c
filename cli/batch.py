"""``iqa batch``: analyse a whole archive into the trend store."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click


class _Progress:
    """A tqdm bar on a terminal; plain log lines (every 10 % or 10 s) otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.last = 0.0
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=total, unit="series", desc="iqa batch", file=sys.stderr)
            self.bar.n = done
            self.bar.refresh()
            return
        now = time.monotonic()
        step = max(total // 10, 1)
        if done == total or done % step == 0 or now - self.last > 10:
            self.last = now
            rate = done / (now - self.t0) if now > self.t0 else 0.0
            eta = (total - done) / rate if rate > 0 else float("nan")
            click.echo(f"batch: {done}/{total} tasks, {rate:.1f}/s, ETA {eta:.0f} s", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command()
@click.argument("archives", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--store", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Trend store (SQLite file).")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="Local worker processes [default: all cores].")
@click.option("--scheduler", default=None, help="Address of an existing Dask distributed scheduler (tcp://host:port).")
@click.option("--phantom", default="auto", show_default=True, help="Phantom name or auto.")
@click.option("--criteria", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Site criteria table (TOML).")
@click.option("--quarantine", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Quarantine report (CSV, or JSON by extension) [default: STORE-quarantine.csv when anything failed].")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.pass_context
def batch(ctx, archives, store, workers, scheduler, phantom, criteria, quarantine, progress) -> None:
    """Analyse every phantom series under ARCHIVES into the trend store.

    Idempotent (series already stored are skipped) and resumable after a crash; files or
    series that cannot be analysed are listed in a quarantine report with the reason.

    \b
        iqa batch /archive/qa-2019 /archive/qa-2020 --store qa.sqlite --workers 2
    """
    from iqa.batch import run_batch, write_quarantine
    from iqa.errors import IqaError

    bar = _Progress(progress)
    try:
        summary = run_batch(archives, store, workers=workers, scheduler=scheduler, phantom=phantom,
                            criteria_path=str(criteria) if criteria else None, progress=bar)
    except IqaError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    for f in summary.failures:
        click.echo(f"error: {f}", err=True)
    if summary.failures:
        qpath = quarantine or store.with_name(store.stem + "-quarantine.csv")
        write_quarantine(qpath, summary.failures)
        click.echo(f"quarantine report: {qpath}", err=True)
    click.echo(summary.line())
    ctx.exit(summary.exit_code)
