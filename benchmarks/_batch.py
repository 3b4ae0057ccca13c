"""Batch section: ``iqa batch`` throughput (series/s) and peak memory.

The archive is single-slice water-cylinder series (``iqa.fixtures`` ``ct-water``, 128², one
series per day, different seeds), written once under ``bench-results/fixtures/batch-water-*``
in parts of 1,000 series.  Each run is a fresh ``iqa batch`` process into an empty store,
timed from process start to exit (start-up, header index, analysis, store writes, trend
evaluation at the end); the batch's own series/s figure (analysis phase) is given beside it.
Peak memory is sampled every 0.1 s over the whole process tree (psutil): the sum of RSS over
all processes (shared pages counted once per process, so an upper bound) and the largest
single process.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

from _common import RESULTS, Row, fixture, log

PART = 1000


def _write_one(args) -> None:
    out, seed, matrix = args
    from iqa.fixtures import generate
    day = date(2020, 1, 1) + timedelta(days=seed)
    generate("ct-water", out, matrix=matrix, n_slices=1, seed=seed, acquired=f"{day.isoformat()}T08:00:00")


def water_archive(n: int, matrix: int = 128, workers: int = 2) -> list[Path]:
    """Folders (parts of up to 1,000 series) holding ``n`` single-slice water series."""
    root = RESULTS / "fixtures" / f"batch-water-{matrix}"
    parts = []
    for p in range((n + PART - 1) // PART):
        part = root / f"part-{p:02d}"
        k = min(PART, n - p * PART)
        if k < PART:                                   # a partial set: its own folder
            part = root / f"n{n}"
        marker = part / f".complete-{k}"
        if not marker.exists():
            if part.exists():
                shutil.rmtree(part)
            jobs = [(part / f"{i:04d}", p * PART + i, matrix) for i in range(k)]
            log(f"batch: writing {k} water series ({matrix}²) into {part}")
            with ProcessPoolExecutor(max_workers=workers) as pool:
                list(pool.map(_write_one, jobs, chunksize=16))
            marker.write_text("")
        parts.append(part)
    return parts


def acr_archive(n: int) -> list[Path]:
    return [fixture("acr-ct-464", seed=s) for s in range(n)]


def run_batch_process(archives: list[Path], workers: int, tag: str) -> dict:
    """One ``iqa batch`` process into a fresh store; wall time, its own rate, peak memory."""
    import psutil

    from _cli import iqa_exe

    tmp = RESULTS / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    store = tmp / f"batch-{tag}-w{workers}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    cmd = [*iqa_exe(), "batch", *map(str, archives), "--store", str(store), "--workers", str(workers),
           "--no-progress"]
    from _common import _cpu

    c0 = _cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ps = psutil.Process(proc.pid)
    peak_sum = peak_one = 0
    while proc.poll() is None:
        try:
            procs = [ps, *ps.children(recursive=True)]
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak_sum = max(peak_sum, sum(rss))
            peak_one = max(peak_one, max(rss, default=0))
        except psutil.Error:
            pass
        time.sleep(0.1)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = _cpu() - c0          # the batch process and every worker it reaped
    line = out.strip().splitlines()[-1] if out.strip() else ""
    m = re.search(r"(\d+) analysed.*?\(([\d.]+) series/s\)", line)
    analysed = int(m.group(1)) if m else 0
    for suffix in ("", "-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    return {"wall_s": wall, "cpu_s": cpu, "analysed": analysed, "batch_rate": float(m.group(2)) if m else None,
            "peak_tree_rss_mb": peak_sum / 2**20, "peak_process_rss_mb": peak_one / 2**20,
            "returncode": proc.returncode, "summary": line,
            "stderr": err.strip().splitlines()[-1] if err.strip() else ""}


def run(quick: bool = False, large: bool = False) -> list[Row]:
    rows: list[Row] = []
    n = 40 if quick else 1000
    matrix = 128
    archives = water_archive(n, matrix)
    plan = [(n, archives, w, "≥ 20 series/s" if w == 2 else "") for w in (1, 2)]
    if large and not quick:
        plan.append((5000, water_archive(5000, matrix), 2, "peak memory flat"))
    for count, arch, workers, goal in plan:
        log(f"batch: {count} water series, {workers} worker(s)")
        r = run_batch_process(arch, workers, f"water{count}")
        rate = r["analysed"] / r["wall_s"] if r["wall_s"] else 0.0
        cpu_rate = workers * r["analysed"] / r["cpu_s"] if r["cpu_s"] else 0.0
        note = (f"CPU {r['cpu_s']:.1f} s for the tree: {cpu_rate:.0f} series/s if {workers} core(s) were free; "
                f"batch's own rate {r['batch_rate']} series/s; peak RSS {r['peak_tree_rss_mb']:.0f} MB over the "
                f"process tree, {r['peak_process_rss_mb']:.0f} MB largest process")
        if r["returncode"] not in (0,) or r["analysed"] != count:
            note = f"exit {r['returncode']}, {r['analysed']}/{count} analysed: {r['stderr'] or r['summary']}; " + note
        rows.append(Row("batch", f"iqa batch, {count:,} single-slice water series {matrix}², {workers} worker(s)",
                        f"{count} series", r["wall_s"], r["wall_s"], 1, goal=goal,
                        met=(rate >= 20) if workers == 2 and count == n else None, note=note,
                        extra={**r, "series_per_s": rate, "cpu_implied_series_per_s": cpu_rate}, cpu_s=r["cpu_s"]))
        log(f"batch: {rate:.1f} series/s, peak {r['peak_tree_rss_mb']:.0f} MB")
    if not quick:
        acr = acr_archive(4)
        for workers in (1, 2):
            log(f"batch: 4 ACR CT volumes, {workers} worker(s)")
            r = run_batch_process(acr, workers, "acr4")
            rate = r["analysed"] / r["wall_s"] if r["wall_s"] else 0.0
            rows.append(Row("batch", f"iqa batch, 4 ACR CT 464 volumes (43 × 512²), {workers} worker(s)", "4 series",
                            r["wall_s"], r["wall_s"], 1,
                            note=(f"batch's own rate {r['batch_rate']} series/s; peak RSS "
                                  f"{r['peak_tree_rss_mb']:.0f} MB tree, {r['peak_process_rss_mb']:.0f} MB largest"
                                  + ("" if r["analysed"] == 4 else f"; only {r['analysed']}/4: {r['stderr']}")),
                            extra={**r, "series_per_s": rate}))
    return rows


def cores() -> int:
    return os.cpu_count() or 1
