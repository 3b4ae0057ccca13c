"""Pipeline section: each phantom pipeline end to end next to the DICOM read floor.

For every fixture three things run side by side (rotating order, after one warm-up run so the
Numba cache is loaded and the files are in the page cache):

* **floor**: bare ``pydicom.dcmread(f).pixel_array`` over the fixture's files;
* **loader**: ``iqa.dicom.load([folder])`` (discovery, grouping, ordering, decoding, rescale);
* **end to end**: ``iqa.analysis.analyze_paths([folder])`` with ``--phantom auto`` (load,
  identify, measure, judge, pair), what ``iqa analyze FOLDER`` does minus printing.

Goals: loader ≤ 1.2× floor (issue 3), end to end ≤ 2× floor (issue 8); ACR CT 464 and ACR MRI
large < 0.5 s after warm-up (issues 4, 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Row, dicom_files, fixture, interleave, log


@dataclass
class Fixture:
    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    phantom: str = ""                 # expected phantom of the results
    abs_goal_s: float | None = None   # issue 4/5 absolute goal after warm-up


FULL = [
    Fixture("ct-water, 1 slice 512²", "ct-water", {"n_slices": 1}, "water"),
    Fixture("ct-water, 3 slices 512²", "ct-water", {"n_slices": 3}, "water"),
    Fixture("acr-ct-464, 43 slices 512²", "acr-ct-464", {}, "acr-ct-464", 0.5),
    Fixture("catphan-604, 37 slices 512²", "catphan-604", {}, "catphan-604"),
    Fixture("acr-mri-large, 11 slices 256² + localizer", "acr-mri-large", {}, "acr-mri-large", 0.5),
    Fixture("mr-flood pair, 2 × 256²", "mr-flood", {}, "mr-flood"),
    Fixture("mr-grid, 256²", "mr-grid", {}, "mr-grid"),
]
QUICK = [
    Fixture("ct-water, 1 slice 128²", "ct-water", {"n_slices": 1, "matrix": 128}, "water"),
    Fixture("mr-grid, 128²", "mr-grid", {"matrix": 128}, "mr-grid"),
]


def fixtures(quick: bool) -> list[Fixture]:
    return QUICK if quick else FULL


def floor_fn(files: list[Path]):
    import pydicom

    def floor():
        for f in files:
            pydicom.dcmread(f).pixel_array
    return floor


def check(folder: Path, expected: str) -> str:
    """'' when iqa analyses the folder as expected, else the first error line."""
    from iqa.analysis import analyze_paths

    out = analyze_paths([folder])
    if out.failures:
        return "iqa failed: " + str(out.failures[0])
    phantoms = sorted({r.phantom for r in out.results})
    if expected and phantoms != [expected]:
        return f"iqa identified {', '.join(phantoms) or 'nothing'} (expected {expected})"
    return ""


def run(quick: bool = False, repeat: int = 7) -> list[Row]:
    from iqa.analysis import analyze_paths
    from iqa.dicom import load

    rows: list[Row] = []
    for fx in fixtures(quick):
        log(f"pipeline {fx.label}: fixture")
        folder = fixture(fx.name, **fx.params)
        files = dicom_files(folder)
        problem = check(folder, fx.phantom)
        floor = floor_fn(files)

        def loader(folder=folder):
            load([folder])

        def e2e(folder=folder):
            analyze_paths([folder])

        log(f"pipeline {fx.label}: timing")
        t_floor, t_load, t_e2e = interleave([floor, loader, e2e], repeat=repeat, budget_s=90)
        size = f"{len(files)} files"
        rows.append(Row("pipelines", f"{fx.label}: read floor (pydicom.dcmread + pixel_array)", size,
                        t_floor.min_s, t_floor.median_s, t_floor.n, cpu_s=t_floor.cpu_median_s))
        r_load = t_load.median_s / t_floor.median_s
        rows.append(Row("pipelines", f"{fx.label}: loader iqa.dicom.load", size, t_load.min_s, t_load.median_s,
                        t_load.n, "read floor", t_floor.min_s, t_floor.median_s, r_load, "≤ 1.2× floor",
                        r_load <= 1.2, cpu_s=t_load.cpu_median_s))
        r_e2e = t_e2e.median_s / t_floor.median_s
        goal = "≤ 2× floor"
        met = r_e2e <= 2.0
        if fx.abs_goal_s is not None:
            goal += f"; < {fx.abs_goal_s:g} s"
            met = met and t_e2e.min_s < fx.abs_goal_s
            if not problem:
                problem = (f"< {fx.abs_goal_s:g} s (issues 4/5): {'met' if t_e2e.min_s < fx.abs_goal_s else 'missed'}; "
                           f"≤ 2× floor: {'met' if r_e2e <= 2.0 else 'missed'}")
        rows.append(Row("pipelines", f"{fx.label}: end to end (analyze_paths, auto)", size, t_e2e.min_s,
                        t_e2e.median_s, t_e2e.n, "read floor", t_floor.min_s, t_floor.median_s, r_e2e, goal,
                        None if problem.startswith("iqa ") else met, problem, cpu_s=t_e2e.cpu_median_s,
                        extra={"fixture": fx.name, "params": fx.params, "folder": str(folder)}))
        log(f"pipeline {fx.label}: e2e {t_e2e.median_s:.3f} s = {r_e2e:.1f}x floor")
    return rows
