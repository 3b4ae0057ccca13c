"""iqa benchmark suite (``make bench``): Markdown table on stdout, JSON in ``--output``.

Sections (``--only`` one or more, comma-separated):

* ``kernels``   every Numba kernel vs its NumPy reference (speed-up, goal ≥ 3×);
* ``pipelines`` each pipeline end to end on fixtures vs the bare pydicom read floor (goal
  ≤ 2×), and the loader alone vs the floor (goal ≤ 1.2×);
* ``peers``     the same series through pylinac 3.49 and hazen 2.0.0, each in its own venv
  under ``bench-results/venvs/`` (goal: iqa ≥ 10× faster);
* ``cli``       ``iqa --help`` (< 0.3 s) and a first ``iqa analyze`` in a fresh process with
  a warm Numba cache (< 1.5 s);
* ``batch``     ``iqa batch`` series/s for 1,000 single-slice water series with 1 and 2
  workers (goal ≥ 20/s on 2 cores), peak memory; ``--large`` adds a 5,000-series run;
* ``trend``     ``iqa trend`` over 1M results (< 2 s), ``iqa report`` 20 × 10 × 365 (< 5 s),
  via ``benchmarks/bench_trend.py``.

Ratios are measured side by side in one run (alternating calls), because the machine is
shared and noisy; absolute times are for orientation, with the 1-minute load average next
to each row.  Where a goal is missed, ``--profile`` (on by default for full runs) appends the
top lines of a cProfile of the missed step.

    python benchmarks/run.py --output bench-results/bench.json
    python benchmarks/run.py --quick                       # small sizes, no peers (~1 min)
    python benchmarks/run.py --only kernels,cli
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, Row, fmt_ratio, fmt_s, load1, log, machine, markdown, verdict  # noqa: E402

SECTIONS = ("kernels", "pipelines", "cli", "batch", "trend", "peers")


def _load(r: Row) -> str:
    return f"{r.load1:.1f}"


def _cpu(r: Row) -> str:
    return fmt_s(r.cpu_s)


def _time(r: Row) -> str:
    if r.median_s is None and r.min_s is None:
        return "–"
    if r.median_s is None or r.n <= 1:
        return fmt_s(r.min_s)
    return f"{fmt_s(r.median_s)} ({fmt_s(r.min_s)})"


def _ref_time(r: Row) -> str:
    if r.ref_median_s is None:
        return "–"
    return f"{fmt_s(r.ref_median_s)} ({fmt_s(r.ref_min_s)})"


TABLES = {
    "kernels": ("Numba kernels vs NumPy references (median (min) per call; speed-up = reference / kernel)", [
        ("kernel", lambda r: r.name), ("input", lambda r: r.size), ("Numba", _time), ("NumPy ref", _ref_time),
        ("speed-up", lambda r: fmt_ratio(r.ratio)), ("goal", lambda r: r.goal), ("met", verdict),
        ("note", lambda r: r.note), ("load", _load)]),
    "pipelines": ("Pipelines end to end and loader vs the read floor (median (min) wall; × floor from medians)", [
        ("step", lambda r: r.name), ("files", lambda r: r.size), ("wall", _time), ("CPU", _cpu),
        ("× floor", lambda r: fmt_ratio(r.ratio)), ("goal", lambda r: r.goal), ("met", verdict),
        ("note", lambda r: r.note), ("load", _load)]),
    "peers": ("iqa vs pylinac / hazen on the same series (peer timed inside its own venv; speed-up = peer / iqa)", [
        ("peer task: series", lambda r: r.name), ("files", lambda r: r.size), ("iqa", _time), ("peer", _ref_time),
        ("iqa faster by", lambda r: fmt_ratio(r.ratio)), ("goal", lambda r: r.goal), ("met", verdict),
        ("note", lambda r: r.note), ("load", _load)]),
    "cli": ("CLI start-up (fresh process each run; goals judged on the minimum)", [
        ("command", lambda r: r.name), ("wall", _time), ("CPU", _cpu), ("goal", lambda r: r.goal),
        ("met", verdict), ("load", _load)]),
    "batch": ("iqa batch throughput (whole process: start-up, index, analysis, store, trend evaluation)", [
        ("run", lambda r: r.name), ("wall", lambda r: fmt_s(r.min_s)), ("CPU (tree)", _cpu),
        ("series/s", lambda r: f"{r.extra['series_per_s']:.1f}" if "series_per_s" in r.extra else "–"),
        ("peak RSS tree / largest", lambda r: (f"{r.extra['peak_tree_rss_mb']:.0f} / "
                                               f"{r.extra['peak_process_rss_mb']:.0f} MB")
         if "peak_tree_rss_mb" in r.extra else "–"),
        ("goal", lambda r: r.goal), ("met", verdict), ("note", lambda r: r.note), ("load", _load)]),
    "trend": ("Trend store and report (benchmarks/bench_trend.py; best of 3)", [
        ("step", lambda r: r.name), ("size", lambda r: r.size), ("wall", lambda r: fmt_s(r.min_s)), ("CPU", _cpu),
        ("goal", lambda r: r.goal), ("met", verdict), ("note", lambda r: r.note), ("load", _load)]),
}


def profile_top(fn, lines: int = 14) -> list[str]:
    """Top lines (by cumulative time) of a cProfile of ``fn()``."""
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    buf = io.StringIO()
    st = pstats.Stats(pr, stream=buf)
    st.sort_stats("cumulative").print_stats(lines)
    text = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(text) if ln.strip().startswith("ncalls")), 0)
    return [ln.replace(str(Path(sys.prefix)), "<venv>").replace(str(Path(__file__).resolve().parents[1]) + "/", "")
            for ln in text[start:] if ln.strip()]


def profiles_for(rows: list[Row]) -> dict[str, list[str]]:
    """cProfile top lines for each missed pipeline/batch goal (import times for the CLI)."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r.met is not False:
            continue
        if r.section == "pipelines" and "folder" in r.extra:
            from iqa.analysis import analyze_paths
            folder = r.extra["folder"]
            out[r.name] = profile_top(lambda: analyze_paths([folder]))
        elif r.section == "batch" and "water" in r.name and "batch: analyze_task" not in out:
            from _batch import water_archive

            from iqa.batch import analyze_task
            from iqa.dicom import scan
            outcome, _ = scan([water_archive(40)[0]])
            heads = outcome.headers[:40]
            analyze_task([heads[0]])
            out["batch: analyze_task over 40 single-slice water series (one worker)"] = profile_top(
                lambda: [analyze_task([h]) for h in heads], 18)
        elif r.section == "cli" and "analyze" in r.name and "cli: imports" not in out:
            from _cli import import_profile

            from _common import fixture
            out["cli: slowest imports of a fresh iqa analyze (python -X importtime, cumulative)"] = import_profile(
                fixture("ct-water", n_slices=1, matrix=128))
    return out


def render(meta: dict, rows: list[Row], profiles: dict[str, list[str]]) -> str:
    m = meta["machine"]
    parts = ["# iqa benchmarks", "",
             f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gb']} GB; {m['os']}",
             f"- versions: iqa {m['iqa']} ({m['commit']}), Python {m['python']}, NumPy {m['numpy']}, "
             f"Numba {m['numba']}, SciPy {m['scipy']}, pydicom {m['pydicom']}",
             f"- load average at start {m['loadavg_start']}, at end {meta['loadavg_end']} (shared machine: "
             "ratios are side by side in one run, absolute times for orientation)",
             f"- run: {meta['args']}, {meta['seconds']:.0f} s, {m['date_utc']}", ""]
    missed = [r for r in rows if r.met is False]
    met = [r for r in rows if r.met is True]
    parts.append(f"Goals: {len(met)} met, {len(missed)} missed"
                 + (": " + "; ".join(f"{r.name}" for r in missed) if missed else "") + "\n")
    for section in SECTIONS:
        sel = [r for r in rows if r.section == section]
        if not sel:
            continue
        title, cols = TABLES[section]
        parts += [f"## {section}: {title}", "", markdown(sel, cols), ""]
    if profiles:
        parts += ["## Profiles of missed goals (cProfile, sorted by cumulative time)", ""]
        for name, lines in profiles.items():
            parts += [f"### {name}", "", "```", *lines, "```", ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", type=Path, default=RESULTS / "bench.json", help="JSON results file")
    ap.add_argument("--quick", action="store_true", help="small sizes, no peers (a smoke run)")
    ap.add_argument("--only", action="append", default=[], help=f"sections, comma-separated: {','.join(SECTIONS)}")
    ap.add_argument("--large", action="store_true", help="also a 5,000-series batch (peak memory)")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per figure (default 7, quick 3)")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                    help="cProfile missed goals [default: on, off with --quick]")
    args = ap.parse_args(argv)
    only = [s.strip() for item in args.only for s in item.split(",") if s.strip()]
    bad = [s for s in only if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    sections = only or [s for s in SECTIONS if not (args.quick and s == "peers")]
    repeat = args.repeat or (3 if args.quick else 7)
    profile = (not args.quick) if args.profile is None else args.profile

    t0 = time.perf_counter()
    meta = {"machine": machine(), "args": " ".join(sys.argv[1:] if argv is None else argv) or "(defaults)"}
    rows: list[Row] = []
    for section in sections:
        log(f"section {section}")
        if section == "kernels":
            import _kernels
            rows += _kernels.run(args.quick, repeat)
        elif section == "pipelines":
            import _pipelines
            rows += _pipelines.run(args.quick, repeat)
        elif section == "cli":
            import _cli
            rows += _cli.run(args.quick, repeat)
        elif section == "batch":
            import _batch
            rows += _batch.run(args.quick, args.large)
        elif section == "trend":
            import _trend
            rows += _trend.run(args.quick)
        elif section == "peers":
            import _peers
            rows += _peers.run(repeat=1 if args.quick else 2)
    profiles = profiles_for(rows) if profile else {}
    meta["seconds"] = time.perf_counter() - t0
    meta["loadavg_end"] = load1()
    text = render(meta, rows, profiles)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({**meta, "rows": [r.to_dict() for r in rows], "profiles": profiles},
                                      indent=2, default=str) + "\n", encoding="utf-8")
    args.output.with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    log(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
