"""``iqa demo``: the whole product on embedded defaults, end to end.

Writes a synthetic multi-scanner archive with scripted drift (the ``archive`` fixture),
analyses it into an SQLite trend store with :func:`iqa.batch.run_batch`, evaluates drift
and writes the HTML report.  Everything lands in one output folder.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqa.batch import BatchSummary, Progress, run_batch


@dataclass(slots=True)
class DemoOutcome:
    archive: Path
    store: Path
    report: Path
    batch: BatchSummary
    trends: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, Any] = field(default_factory=dict)

    @property
    def alarmed(self) -> list[dict[str, Any]]:
        return [t for t in self.trends if t["status"] in ("alarm", "out_of_tolerance", "watch")]


def run_demo(outdir: str | Path, *, days: int = 60, scanners: int = 4, seed: int = 0,
             workers: int | None = None, progress: Progress | None = None) -> DemoOutcome:
    """Generate, analyse, trend and report into ``outdir`` (created; an old store there is reused)."""
    from iqa.fixtures import generate
    from iqa.report import write_report
    from iqa.store import Store
    from iqa.trend import trend_objects

    out = Path(outdir)
    archive = out / "archive"
    truth = generate("archive", archive, days=days, scanners=scanners, seed=seed)
    store_path = out / "iqa.sqlite"
    summary = run_batch([archive], store_path, workers=workers, progress=progress)
    last = _last_day(truth)
    with Store(store_path) as store:
        trends = trend_objects(store, today=last)
        report = write_report(store, out / "report.html", today=last)
    return DemoOutcome(archive, store_path, report, summary, trends, truth)


def _last_day(truth: dict[str, Any]) -> dt.date:
    """The archive's last acquisition day, so staleness is judged as on that day."""
    for key in ("end_date", "last_date", "end"):
        if key in truth:
            return dt.date.fromisoformat(str(truth[key])[:10])
    params = truth.get("parameters", {})
    start = params.get("start_date") or params.get("start")
    if start and "days" in params:
        return dt.date.fromisoformat(str(start)[:10]) + dt.timedelta(days=int(params["days"]) - 1)
    return dt.date.today()
