"""Benchmark: ``iqa trend`` over 1 million stored results, ``iqa report`` for 20 scanners x 10 metrics x 1 year.

Goals (issue 6): trend < 2 s, report < 5 s.  The stores are built synthetically with a bulk
insert straight into the store's schema (created by :class:`iqa.store.Store`, so the indexes
are the real ones), daily values with noise and, on a quarter of the series, a drift.

    python benchmarks/bench_trend.py                  # Markdown table
    python benchmarks/bench_trend.py --json out.json  # also JSON
    python benchmarks/bench_trend.py --rows 200000    # smaller trend store
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METRICS_CT = ("water_hu", "noise_hu", "uniformity_hu", "hu_air", "hu_acrylic", "hu_bone", "cnr",
              "mtf50_lpcm", "mtf10_lpcm", "slice_thickness_mm")
UNITS = {"water_hu": "HU", "noise_hu": "HU", "uniformity_hu": "HU", "hu_air": "HU", "hu_acrylic": "HU",
         "hu_bone": "HU", "cnr": "", "mtf50_lpcm": "lp/cm", "mtf10_lpcm": "lp/cm", "slice_thickness_mm": "mm"}
MEANS = {"water_hu": 0.0, "noise_hu": 5.0, "uniformity_hu": 1.0, "hu_air": -1000.0, "hu_acrylic": 120.0,
         "hu_bone": 900.0, "cnr": 1.2, "mtf50_lpcm": 3.4, "mtf10_lpcm": 6.1, "slice_thickness_mm": 5.0}
SDS = {"water_hu": 0.7, "noise_hu": 0.1, "uniformity_hu": 0.4, "hu_air": 3.0, "hu_acrylic": 2.0,
       "hu_bone": 5.0, "cnr": 0.05, "mtf50_lpcm": 0.05, "mtf10_lpcm": 0.08, "slice_thickness_mm": 0.1}
DAY0 = dt.date(2025, 1, 1)


def build_store(path: Path, *, scanners: int, days: int, metrics=METRICS_CT, seed: int = 0) -> int:
    """Daily CT water/ACR results for ``scanners`` x ``days``; returns the number of result rows."""
    from iqa.store import Store, protocol_key, version_rank

    rng = np.random.default_rng(seed)
    pkey = protocol_key("CT", {"kvp": 120, "kernel": "STANDARD", "slice_thickness_mm": 5})
    proto = json.dumps({"kvp": 120.0, "kernel": "STANDARD", "slice_thickness_mm": 5.0}, sort_keys=True)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    rank = version_rank("0.1.0")
    with Store(path) as st:
        con = st.connection
        con.execute("PRAGMA synchronous = OFF")
        con.execute("BEGIN")
        con.executemany("INSERT INTO scanners (id, key, manufacturer, model, station, serial, modality) "
                        "VALUES (?, ?, 'Synthetic', 'CT-Sim', ?, ?, 'CT')",
                        [(s + 1, f"CT-Sim/SN{s:04d}", f"ST{s:04d}", f"SN{s:04d}") for s in range(scanners)])
        con.executemany("INSERT INTO streams (id, scanner_id, phantom, protocol_key, metric, unit, modality, "
                        "protocol) VALUES (?, ?, 'acr-ct-464', ?, ?, ?, 'CT', ?)",
                        [(s * len(metrics) + m + 1, s + 1, pkey, name, UNITS.get(name, ""), proto)
                         for s in range(scanners) for m, name in enumerate(metrics)])
        acquired = [(DAY0 + dt.timedelta(days=d)).isoformat() + "T08:00:00" for d in range(days)]
        ordinals = [DAY0.toordinal() + d for d in range(days)]
        con.executemany("INSERT INTO series (id, uid, scanner_id, phantom, protocol_key, protocol, acquired, "
                        "modality, n_files, stored_at) VALUES (?, ?, ?, 'acr-ct-464', ?, ?, ?, 'CT', 4, ?)",
                        ((s * days + d + 1, f"1.2.826.0.1.3680043.10.1137.{s}.{d}", s + 1, pkey, proto,
                          acquired[d], now) for s in range(scanners) for d in range(days)))
        n = 0
        t = np.arange(days)
        for s in range(scanners):
            for m, name in enumerate(metrics):
                v = MEANS.get(name, 0.0) + rng.normal(0, SDS.get(name, 1.0), days)
                if (s + m) % 4 == 0:   # a quarter drift from mid-history at 0.1 sd/day
                    v += np.where(t > days // 2, (t - days // 2) * 0.1 * SDS.get(name, 1.0), 0.0)
                stream = s * len(metrics) + m + 1
                con.executemany(
                    "INSERT INTO results (series_id, stream_id, metric, value, unit, status, limits, iqa_version, "
                    "version_rank, day, acquired, current, stored_at) VALUES (?, ?, ?, ?, ?, 'info', '{}', '0.1.0', "
                    "?, ?, ?, 1, ?)",
                    ((s * days + d + 1, stream, name, float(v[d]), UNITS.get(name, ""), rank, ordinals[d],
                      acquired[d], now) for d in range(days)))
                n += days
        con.execute("COMMIT")
        con.execute("ANALYZE")
    return n


def timed(fn, repeat: int = 3) -> tuple[float, float]:
    """Best wall time and best CPU time (this process plus its children) of ``repeat`` runs, seconds.

    CPU time is shown because a shared machine's wall time says more about the neighbours."""
    import resource

    def cpu():
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), cpu()
        fn()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, cpu() - c0)
    return best, best_cpu


def cli_time(args: list[str], repeat: int = 3) -> float:
    exe = Path(sys.executable).with_name("iqa")
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "iqa.cli.main"]), *args]

    def run():
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return timed(run, repeat)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="result rows in the trend store")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", type=Path, help="build the stores in this folder and keep them")
    args = ap.parse_args(argv)

    from iqa.report import write_report
    from iqa.store import Store
    from iqa.trend import trend_objects

    folder = args.keep or Path(tempfile.mkdtemp(prefix="iqa-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []

    # Trend: 1M rows = 100 scanners x 10 metrics x 1000 days (adjusted to --rows).
    days = 1000
    scanners = max(1, round(args.rows / (days * len(METRICS_CT))))
    big = folder / "trend-1M.sqlite"
    if not big.exists():
        t0 = time.perf_counter()
        n = build_store(big, scanners=scanners, days=days)
        rows.append(("build trend store (bulk insert)", f"{n:,} results", time.perf_counter() - t0, None))
    else:
        with Store(big) as st:
            n = st.counts()["results"]
    today = DAY0 + dt.timedelta(days=days)
    with Store(big) as st:
        st.connection.execute("DELETE FROM stream_cache")   # cold: every series read from the results index
        found = []
        cold = timed(lambda: found.append(len(trend_objects(st, today=today))), repeat=1)
        k = found[0]
        rows.append(("trend_objects() in process, cold (series cache empty, incl. numba load)",
                     f"{n:,} results, {k} series", cold, 2.0))
        rows.append(("trend_objects() in process, warm (series cache valid)", f"{n:,} results, {k} series",
                     timed(lambda: trend_objects(st, today=today)), 2.0))
    rows.append(("`iqa trend --format json --no-record` (CLI, incl. start-up)", f"{n:,} results",
                 cli_time(["trend", "--store", str(big), "--format", "json", "--no-record",
                           "--today", today.isoformat()]), 2.0))

    # Report: 20 scanners x 10 metrics x 365 days.
    small = folder / "report-20x10x365.sqlite"
    if not small.exists():
        build_store(small, scanners=20, days=365, seed=1)
    out = folder / "report.html"
    today = DAY0 + dt.timedelta(days=365)
    with Store(small) as st:
        rows.append(("write_report() in process", "20 scanners x 10 metrics x 365 days",
                     timed(lambda: write_report(st, out, today=today)), 5.0))
    rows.append(("`iqa report` (CLI, incl. start-up)", "20 scanners x 10 metrics x 365 days",
                 cli_time(["report", "--store", str(small), "--output", str(out), "--today", today.isoformat()]), 5.0))
    size = out.stat().st_size

    print("| step | size | wall s (best of 3) | CPU s | goal |")
    print("|---|---|---:|---:|---:|")
    for name, what, sec, goal in rows:
        wall, cpu = sec if isinstance(sec, tuple) else (sec, float("nan"))
        print(f"| {name} | {what} | {wall:.2f} | {cpu:.2f} | {'' if goal is None else f'< {goal:g} s'} |")
    print(f"\nreport.html: {size / 1e6:.1f} MB; cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([{"step": a, "size": b, "wall_s": c[0] if isinstance(c, tuple) else c,
                                          "cpu_s": c[1] if isinstance(c, tuple) else None, "goal_s": d}
                                         for a, b, c, d in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
