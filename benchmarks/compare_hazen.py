"""Compare iqa's ACR MRI large phantom results with hazen 2.0.0 on the real scans (not a test).

hazen lives in its own virtual environment (its pins clash with iqa's)::

    python3 -m venv /tmp/hazen-venv && /tmp/hazen-venv/bin/pip install hazen==2.0.0
    .venv/bin/python benchmarks/compare_hazen.py [--hazen /tmp/hazen-venv/bin/hazen] [--data ../shared/data/mr/acr]

For every ACR series under ``--data`` it runs each hazen ACR task (``hazen <task> <folder>``,
JSON on stdout) and iqa's pipeline, then prints one Markdown table per series with the
relative difference; rows over 5 % are marked.  hazen runs in a scratch working directory
(it writes ``Hazen_logger.log`` into the current one); its JSON is cached under
``bench-results/hazen-cache`` so that re-running after an iqa change takes seconds.
Timings: iqa's analysis after a warm-up (median of 5, wall and CPU), hazen's tasks summed
(``hazen acr_all`` itself needs a T2 series as well, which the shared data do not have, and
rejects the TR 1000 / TE 30 Siemens series as "Unknown acquisition type").
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: hazen task -> list of (iqa metric, predicate on a hazen measurement dict)
TASKS = {
    "acr_geometric_accuracy": [
        ("length_s1_h_mm", lambda m: m["subtype"] == "Slice 1 Horizontal distance"),
        ("length_s1_v_mm", lambda m: m["subtype"] == "Slice 1 Vertical distance"),
        ("length_s5_h_mm", lambda m: m["subtype"] == "Slice 5 Horizontal distance"),
        ("length_s5_v_mm", lambda m: m["subtype"] == "Slice 5 Vertical distance"),
        ("length_s5_d1_mm", lambda m: m["subtype"] == "Slice 5 Diagonal SW distance"),   # NE-SW line, 45 deg
        ("length_s5_d2_mm", lambda m: m["subtype"] == "Slice 5 Diagonal SE distance"),   # NW-SE line, 135 deg
    ],
    "acr_slice_thickness": [("slice_thickness_mm", lambda m: m["subtype"] == "slice width")],
    "acr_slice_position": [
        ("slice_position_s1_mm", lambda m: str(m.get("description", "")).startswith("Slice 1 ")),
        ("slice_position_s11_mm", lambda m: str(m.get("description", "")).startswith("Slice 11 ")),
    ],
    "acr_spatial_resolution": [
        ("resolution_ul_mm", lambda m: m["subtype"] == "Upper Left"),
        ("resolution_lr_mm", lambda m: m["subtype"] == "Lower Right"),
    ],
    "acr_uniformity": [("piu_percent", lambda m: m["subtype"] == "Integral uniformity")],
    "acr_ghosting": [("ghosting_percent", lambda m: m["subtype"] == "signal ghosting")],
    "acr_snr": [("snr", lambda m: m["subtype"] == "smoothing")],
    "acr_low_contrast_object_detectability": [("lcd_spokes", lambda m: m["subtype"] == "total")],
}
SAGITTAL = {"acr_sagittal_geometric_accuracy": [("length_sag_mm", lambda m: m["name"] == "GeometricAccuracy")]}


#: hazen CPU and wall seconds per series, summed over its tasks (filled by run_hazen)
HAZEN_TIME: dict[str, list[float]] = {}


def run_hazen(hazen: str, task: str, folder: Path, cwd: str, cache: Path | None = None) -> tuple[list[dict], str]:
    key = hashlib.sha1(f"{task}|{folder.resolve()}".encode()).hexdigest()[:16]
    if cache is not None and (cache / f"{key}.json").exists():
        saved = json.loads((cache / f"{key}.json").read_text())
        HAZEN_TIME.setdefault(folder.name, [0.0, 0.0])
        HAZEN_TIME[folder.name][0] += saved["wall"]
        HAZEN_TIME[folder.name][1] += saved["cpu"]
        return saved["measurements"], saved["error"]
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([hazen, task, str(folder)], capture_output=True, text=True, cwd=cwd, timeout=900)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    HAZEN_TIME.setdefault(folder.name, [0.0, 0.0])
    HAZEN_TIME[folder.name][0] += wall
    HAZEN_TIME[folder.name][1] += cpu
    meas, err = _parse(proc, task, proc.stdout)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{key}.json").write_text(json.dumps({"measurements": meas, "error": err, "wall": wall, "cpu": cpu}))
    return meas, err


def _parse(proc, task: str, out: str) -> tuple[list[dict], str]:
    start = out.rfind("\n{")
    start = 0 if start < 0 and out.startswith("{") else start
    if proc.returncode != 0 or start < 0:
        tail = (proc.stderr or out).strip().splitlines()[-1:] or ["no output"]
        return [], f"hazen {task} failed: {tail[0][:160]}"
    return json.loads(out[start:])["measurements"], ""


def hazen_values(hazen: str, tasks: dict, folder: Path, cwd: str, cache: Path | None) -> tuple[dict, list[str]]:
    values, notes = {}, []
    for task, wanted in tasks.items():
        meas, err = run_hazen(hazen, task, folder, cwd, cache)
        if err:
            notes.append(err)
            continue
        for metric, pick in wanted:
            hits = [m["value"] for m in meas if pick(m)]
            if hits:
                values[metric] = hits[0]
    return values, notes


def iqa_values(folder: Path) -> tuple[dict, list[str], float]:
    from iqa.dicom import load_series
    from iqa.phantoms import acr_mri
    series = load_series(folder)
    acr_mri.analyze(series)                         # warm-up (numba caches, imports)
    times, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        res = acr_mri.analyze(series)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return ({k: m.value for k, m in res.measurements.items()}, list(res.warnings),
            (sorted(times)[2], sorted(cpu)[2]))


def table(name: str, ours: dict, theirs: dict, truth: dict | None = None) -> list[str]:
    if truth:
        rows = [f"### {name}", "", "| metric | truth | iqa | hazen 2.0.0 | diff |", "|---|---:|---:|---:|---:|"]
    else:
        rows = [f"### {name}", "", "| metric | iqa | hazen 2.0.0 | diff |", "|---|---:|---:|---:|"]
    for metric in sorted(set(ours) | set(theirs)):
        a, b = ours.get(metric), theirs.get(metric)
        if isinstance(b, (int, float)) and isinstance(a, (int, float)) and b not in (0, None):
            rel = 100.0 * (a - b) / abs(b)
            flag = " **>5 %**" if abs(rel) > 5 else ""
            diff = f"{rel:+.1f} %{flag}"
        else:
            diff = "—"
        fa = f"{a:.3f}" if isinstance(a, (int, float)) else "—"
        fb = f"{b:.3f}" if isinstance(b, (int, float)) and not isinstance(b, bool) else ("—" if b is None else str(b))
        if truth:
            ft = f"{truth[metric]:.3f}" if isinstance(truth.get(metric), (int, float)) else "—"
            rows.append(f"| {metric} | {ft} | {fa} | {fb} | {diff} |")
        else:
            rows.append(f"| {metric} | {fa} | {fb} | {diff} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hazen", default="/tmp/hazen-venv/bin/hazen")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mr" / "acr"))
    ap.add_argument("--series", nargs="*", default=["Siemens", "GE_Artist_1.5T_T1", "PhilipsAchieva",
                                                    "Siemens_Sola_1.5T_T1", "SiemensSolaFitLocalizer"])
    ap.add_argument("--cache", default=str(REPO / "bench-results" / "hazen-cache"),
                    help="keep hazen's JSON per (task, series) here and reuse it (hazen takes minutes)")
    ap.add_argument("--fixture", nargs="*", default=[],
                    help="also compare on iqa fixture series folders (truth.json in the parent), e.g. "
                         "an 'iqa fixtures acr-mri-large OUT' OUT/axial")
    args = ap.parse_args(argv)
    data = Path(args.data)
    lines = []
    with tempfile.TemporaryDirectory() as cwd:
        for name in list(args.series) + list(args.fixture):
            folder = Path(name) if name in args.fixture else data / name
            truth_file = folder.parent / "truth.json"
            truth = json.loads(truth_file.read_text())["metrics"] if name in args.fixture and truth_file.exists() else None
            tasks = SAGITTAL if "Localizer" in name else TASKS
            theirs, notes = hazen_values(args.hazen, tasks, folder, cwd, Path(args.cache) if args.cache else None)
            ours, warns, secs = iqa_values(folder)
            lines += table(name, ours, theirs, truth)
            lines.append("")
            lines.append(f"iqa analysis {secs[0] * 1000:.0f} ms wall, {secs[1] * 1000:.0f} ms CPU "
                         "(median of 5 after warm-up; the machine is shared, CPU time is the steadier figure)")
            wall, cpu = HAZEN_TIME.get(folder.name, [float("nan")] * 2)
            lines.append(f"hazen, all its ACR tasks on this series (one process per task): {wall:.1f} s wall, "
                         f"{cpu:.1f} s CPU")
            lines += [f"- hazen: {n}" for n in notes] + [f"- iqa warning: {w}" for w in warns] + [""]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
