"""Archive batch: index headers, analyse series in parallel, store each series atomically.

Design
------
* **Index first**: every file's header is read with ``stop_before_pixels`` and grouped into
  series (:func:`iqa.dicom.scan`); pixels are read later, in the worker that analyses the
  series, so the main process never holds volumes.
* **Idempotent and resumable**: a series already in the store is skipped before any pixel
  is read; each task's results (a series, or an MR pair) are written in one transaction, so
  ``kill -9`` at any moment leaves whole tasks or nothing, and a rerun finishes the rest
  with the same pairs (they are formed over the whole archive before stored tasks are dropped).
* **Bounded memory**: at most ``2 x workers`` tasks are in flight; results are written and
  dropped as they arrive.
* **Pairs**: MR series with the same scanner, protocol and slice positions are sent to one
  task so that the NEMA two-acquisition SNR can be measured (:func:`iqa.analysis.pair_key`).
* **Executors**: local processes (``concurrent.futures``, ``workers`` of them; 1 runs in
  process) or an existing Dask distributed cluster (``scheduler`` address).  The task
  function is the same in both, so results are identical.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iqa.dicom import FileFailure, SeriesHeader, scan
from iqa.errors import IqaError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchSummary:
    """What a batch run did; ``failures`` holds every quarantined file or series with its reason."""

    series_found: int = 0
    analyzed: int = 0
    skipped: int = 0          # already in the store
    failed: int = 0           # series that could not be analysed
    alarms: int = 0           # new drift alarms raised by this run
    files_failed: int = 0     # files that could not be read at all
    files_skipped: int = 0    # plainly non-DICOM files passed over (reports, truth.json ...)
    seconds: float = 0.0
    failures: list[FileFailure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """INTERFACE.md: 0 all analysed (whatever the verdicts), 1 some inputs could not be."""
        return 1 if self.failures else 0

    def line(self) -> str:
        rate = self.analyzed / self.seconds if self.seconds > 0 else 0.0
        return (f"{self.series_found} series found: {self.analyzed} analysed, {self.skipped} already stored, "
                f"{self.failed} failed, {self.files_failed} unreadable files ({self.files_skipped} non-DICOM skipped); "
                f"{self.alarms} new alarms; "
                f"{self.seconds:.1f} s ({rate:.1f} series/s)")


Progress = Callable[[int, int], None]   # (done, total)


def group_tasks(headers: list[SeriesHeader]) -> list[list[SeriesHeader]]:
    """Group headers into analysis tasks: MR acquisitions that could pair travel together."""
    from iqa.analysis import pair_key

    groups: dict[tuple, list[SeriesHeader]] = defaultdict(list)
    tasks: list[list[SeriesHeader]] = []
    for h in headers:
        if h.modality == "MR":
            groups[pair_key(h)].append(h)
        else:
            tasks.append([h])
    for members in groups.values():
        members.sort(key=lambda h: (h.acquired is None, h.acquired, h.uid))
        for i in range(0, len(members), 2):
            tasks.append(members[i:i + 2])
    tasks.sort(key=lambda t: (t[0].acquired is None, t[0].acquired, t[0].uid))
    return tasks


def analyze_task(headers: list[SeriesHeader], phantom: str = "auto",
                 criteria_path: str | None = None) -> list[dict[str, Any]]:
    """Read and analyse one task's series; return plain dicts (results or failures).

    Runs in a worker process (local pool or Dask), so it takes and returns only picklable,
    small values: headers in, result dicts out, never volumes.
    """
    from iqa.analysis import analyze_group
    from iqa.criteria import Criteria
    from iqa.dicom import read_each

    criteria = Criteria.default(criteria_path)

    out: list[dict[str, Any]] = []
    for item in analyze_group(read_each(headers), phantom=phantom, criteria=criteria):
        if isinstance(item, FileFailure):
            out.append({"failure": {"path": item.path, "reason": item.reason}})
        else:
            out.append({"result": item.to_dict(curves=False)})
    return out


def _run_local(tasks: list[list[SeriesHeader]], workers: int, phantom: str,
               criteria_path: str | None) -> Iterator[list[dict[str, Any]]]:
    if workers <= 1:
        for t in tasks:
            yield analyze_task(t, phantom, criteria_path)
        return
    it = iter(tasks)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        running = set()
        for t in it:
            running.add(pool.submit(analyze_task, t, phantom, criteria_path))
            if len(running) >= 2 * workers:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    running.add(pool.submit(analyze_task, nxt, phantom, criteria_path))


def _run_dask(tasks: list[list[SeriesHeader]], scheduler: str, phantom: str,
              criteria_path: str | None, timeout_s: float = 10.0) -> Iterator[list[dict[str, Any]]]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise IqaError("--scheduler needs Dask distributed: pip install 'iqa[dask]'") from None
    try:
        client = Client(scheduler, timeout=f"{timeout_s}s")
    except (OSError, TimeoutError) as exc:
        raise IqaError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        n = max(2 * sum(client.nthreads().values()), 2)
        it = iter(tasks)
        futures = [client.submit(analyze_task, t, phantom, criteria_path, pure=False)
                   for t in (next(it, None) for _ in range(n)) if t is not None]
        ac = as_completed(futures)
        for fut in ac:
            yield fut.result()
            fut.release()
            nxt = next(it, None)
            if nxt is not None:
                ac.add(client.submit(analyze_task, nxt, phantom, criteria_path, pure=False))
    finally:
        client.close()


def run_batch(archives: Iterable[str | os.PathLike], store_path: str | os.PathLike, *,
              workers: int | None = None, scheduler: str | None = None, phantom: str = "auto",
              criteria_path: str | None = None, quarantine: str | os.PathLike | None = None,
              progress: Progress | None = None, evaluate_trends: bool = True,
              scheduler_timeout_s: float = 10.0) -> BatchSummary:
    """Analyse every series under ``archives`` into the store at ``store_path``.

    Parameters
    ----------
    workers : local worker processes (default: all cores); 1 runs in this process.
    scheduler : address of an existing Dask distributed scheduler; overrides ``workers``.
    quarantine : CSV file listing every file or series that could not be analysed.
    progress : called as ``progress(done, total)`` after each task.
    """
    from iqa.store import Store

    t0 = time.perf_counter()
    summary = BatchSummary()
    outcome, _ = scan(archives)
    summary.failures.extend(outcome.failures)
    summary.files_failed = len(outcome.failures)
    summary.files_skipped = len(outcome.skipped)
    summary.series_found = len(outcome.headers)
    workers = workers or os.cpu_count() or 1
    with Store(store_path) as store:
        # Pairs are formed over the whole archive, then tasks already stored are dropped: which
        # series an interrupted run had stored never changes which acquisitions pair up.
        stored = {h.uid for h in outcome.headers if store.has_series(h.uid)}
        summary.skipped = len(stored)
        tasks = [t for t in group_tasks(outcome.headers) if any(h.uid not in stored for h in t)]
        runner = (_run_dask(tasks, scheduler, phantom, criteria_path, scheduler_timeout_s) if scheduler
                  else _run_local(tasks, workers, phantom, criteria_path))
        done = 0
        if progress:
            progress(0, len(tasks))
        for items in runner:
            results = []
            for item in items:
                if "failure" in item:
                    summary.failures.append(FileFailure(**item["failure"]))
                    summary.failed += 1
                else:
                    results.append(item["result"])
            store.add_results(results)          # a task (a pair) is stored whole or not at all
            summary.analyzed += sum(r["series_uid"] not in stored for r in results)
            done += 1
            if progress:
                progress(done, len(tasks))
        if evaluate_trends and summary.analyzed:
            summary.alarms = raise_alarms(store)
    if quarantine is not None:
        write_quarantine(quarantine, summary.failures)
    summary.seconds = time.perf_counter() - t0
    return summary


def raise_alarms(store) -> int:
    """Evaluate trends after new results and record alarms; returns the number of new alarms."""
    from iqa.trend import trend_objects
    return store.record_alarms(trend_objects(store))


def write_quarantine(path: str | os.PathLike, failures: list[FileFailure]) -> Path:
    """Write the quarantine report: CSV (path, reason) or JSON when the name ends in .json."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps([{"path": f.path, "reason": f.reason} for f in failures], indent=2) + "\n",
                        encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "reason"])
            for f in failures:
                w.writerow([f.path, f.reason])
    return path
