"""Compare iqa's ACR MRI large phantom results with hazen 2.0.0 on the real scans (not a test).

hazen lives in its own virtual environment (its pins clash with iqa's)::

    python3 -m venv /tmp/hazen-venv && /tmp/hazen-venv/bin/pip install hazen==2.0.0
    .venv/bin/python benchmarks/compare_hazen.py [--hazen /tmp/hazen-venv/bin/hazen] [--data ../shared/data/mr/acr]

For every ACR series under ``--data`` it runs each hazen ACR task (``hazen <task> <folder>``,
JSON on stdout) and iqa's pipeline, then prints one Markdown table per series with the
relative difference; rows over 5 % are marked.  hazen runs in a scratch working directory
(it writes ``Hazen_logger.log`` into the current one).  Timings: iqa's analysis after a
warm-up (median of 5), hazen's whole ``acr_all`` run (T1 folder given as T1 and T2).
"""
from __future__ import annotations

import argparse
import json
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


def run_hazen(hazen: str, task: str, folder: Path, cwd: str) -> tuple[list[dict], str]:
    proc = subprocess.run([hazen, task, str(folder)], capture_output=True, text=True, cwd=cwd, timeout=900)
    out = proc.stdout
    start = out.rfind("\n{")
    start = 0 if start < 0 and out.startswith("{") else start
    if proc.returncode != 0 or start < 0:
        tail = (proc.stderr or out).strip().splitlines()[-1:] or ["no output"]
        return [], f"hazen {task} failed: {tail[0][:160]}"
    return json.loads(out[start:])["measurements"], ""


def hazen_values(hazen: str, tasks: dict, folder: Path, cwd: str) -> tuple[dict, list[str]]:
    values, notes = {}, []
    for task, wanted in tasks.items():
        meas, err = run_hazen(hazen, task, folder, cwd)
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
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        res = acr_mri.analyze(series)
        times.append(time.perf_counter() - t0)
    return ({k: m.value for k, m in res.measurements.items()}, list(res.warnings), sorted(times)[2])


def table(name: str, ours: dict, theirs: dict) -> list[str]:
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
        rows.append(f"| {metric} | {fa} | {fb} | {diff} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hazen", default="/tmp/hazen-venv/bin/hazen")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mr" / "acr"))
    ap.add_argument("--series", nargs="*", default=["Siemens", "GE_Artist_1.5T_T1", "PhilipsAchieva",
                                                    "Siemens_Sola_1.5T_T1", "SiemensSolaFitLocalizer"])
    ap.add_argument("--timing", action="store_true", help="also time hazen acr_all on acr/Siemens")
    args = ap.parse_args(argv)
    data = Path(args.data)
    lines = []
    with tempfile.TemporaryDirectory() as cwd:
        for name in args.series:
            folder = data / name
            tasks = SAGITTAL if "Localizer" in name else TASKS
            theirs, notes = hazen_values(args.hazen, tasks, folder, cwd)
            ours, warns, secs = iqa_values(folder)
            lines += table(name, ours, theirs)
            lines.append("")
            lines.append(f"iqa analysis {secs * 1000:.0f} ms (median of 5 after warm-up)")
            lines += [f"- hazen: {n}" for n in notes] + [f"- iqa warning: {w}" for w in warns] + [""]
        if args.timing:
            t0 = time.perf_counter()
            subprocess.run([args.hazen, "acr_all", str(data / "Siemens"), str(data / "Siemens"),
                            str(data / "SiemensSolaFitLocalizer")], capture_output=True, cwd=cwd, timeout=1800)
            lines.append(f"hazen acr_all (Siemens T1 as T1 and T2, Sola localizer): {time.perf_counter() - t0:.1f} s wall")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
