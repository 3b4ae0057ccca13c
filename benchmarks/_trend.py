"""Trend section: ``benchmarks/bench_trend.py`` (the store owner's benchmark) run as is.

It builds a 1-million-result store and a 20 scanners × 10 metrics × 365 days store with the
store's real schema, and times ``iqa trend`` and ``iqa report`` in process and as CLI calls
(best of 3).  Goals (issue 6): trend < 2 s over 1M results, report < 5 s.  The stores are
kept under ``bench-results/trend-stores-<rows>/`` so a rerun skips the bulk insert.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import RESULTS, Row, log

SCRIPT = Path(__file__).with_name("bench_trend.py")


def run(quick: bool = False) -> list[Row]:
    rows_n = 20_000 if quick else 1_000_000
    keep = RESULTS / f"trend-stores-{rows_n}"
    out = RESULTS / "tmp" / f"bench_trend-{rows_n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    log(f"trend: bench_trend.py --rows {rows_n}")
    r = subprocess.run([sys.executable, str(SCRIPT), "--rows", str(rows_n), "--json", str(out), "--keep", str(keep)],
                       capture_output=True, text=True)
    if r.returncode != 0 or not out.exists():
        err = [ln for ln in r.stderr.splitlines() if ln.strip()]
        return [Row("trend", "bench_trend.py", f"{rows_n:,} results", note=f"failed: {err[-1] if err else r.returncode}")]
    rows = []
    for item in json.loads(out.read_text()):
        goal = item.get("goal_s")
        sec = item.get("wall_s", item.get("seconds"))
        cpu = item.get("cpu_s")
        note = ""
        if goal and cpu is not None and sec >= goal > cpu:
            note = f"CPU time {cpu:.2f} s is within the goal: the wall time is other load"
        rows.append(Row("trend", item["step"], item["size"], sec, None, 3 if goal else 1,
                        goal=f"< {goal:g} s" if goal else "", met=(sec < goal) if goal else None, note=note,
                        cpu_s=cpu))
    return rows
