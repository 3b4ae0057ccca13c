"""Compare iqa's flood SNR with hazen 2.0.0's ``snr`` task on the real MagNET flood scans.

hazen runs in its own virtualenv (it pins other numpy/pydicom versions)::

    python3 -m venv /tmp/hazen-venv-snr && /tmp/hazen-venv-snr/bin/pip install hazen==2.0.0
    .venv/bin/python benchmarks/compare_hazen_snr.py [--hazen /tmp/hazen-venv-snr/bin/hazen]

What is compared (both "measured", i.e. not hazen's bandwidth/voxel-normalised SNR):

* two-acquisition SNR: iqa ``snr_subtraction`` (NEMA MS 1: S / (SD(I1 - I2)/sqrt 2) over one ROI of
  75 % of the phantom area) vs hazen ``SNR subtraction`` (mean over five 20 x 20 px squares, one at
  the phantom centre and four with centres 40 px diagonally off it, of local mean / (local SD of the
  difference / sqrt 2));
* single image: iqa ``snr`` (NEMA background method, SD of the air corners / 0.655; omitted when the
  background is not Rayleigh noise) vs hazen ``SNR smoothing`` (McCann 2013: the same five squares,
  noise = SD of the image minus its 9 x 9 boxcar smoothing, no sqrt 2 and no correction for the
  boxcar removing 1/81 of the variance).

To show where differences come from, the script also evaluates hazen's five-square recipe on iqa's
own localisation ("iqa, hazen ROIs"): if that matches hazen, the difference is the ROI definition,
not the arithmetic.  Output: a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("IQA_SHARED_DATA", REPO.parent / "shared" / "data")) / "mr"
PAIRS = ("snr/Siemens", "snr/GE")
SINGLES = ("uniformity/axial_oil.IMA", "uniformity/cor.dcm", "uniformity/sag.dcm", "uniformity/cor2.dcm")


def run_hazen(hazen: str, folder: Path) -> list[dict]:
    out = subprocess.run([hazen, "snr", str(folder), "--level", "all", "--format", "json"],
                         capture_output=True, text=True, check=True)
    text = out.stdout[out.stdout.index("{"):]
    return json.loads(text)["measurements"]


def hazen_values(measurements: list[dict]) -> dict[str, list[float]]:
    got: dict[str, list[float]] = {"subtraction": [], "smoothing": []}
    for m in measurements:
        if m["name"] == "SNR" and m["type"] == "measured":
            got[m["subtype"]].append(float(m["value"]))
    return got


def hazen_rois(cy: int, cx: int) -> list[tuple[slice, slice]]:
    """hazen's five 20 x 20 px squares (centre and +-40 px diagonals), as (rows, cols) slices."""
    out = [(slice(cy - 10, cy + 10), slice(cx - 10, cx + 10))]
    for oy in (-50, 30):
        for ox in (-50, 30):
            out.append((slice(cy + oy, cy + oy + 20), slice(cx + ox, cx + ox + 20)))
    return out


def iqa_with_hazen_rois(a: np.ndarray, b: np.ndarray | None, centre_yx) -> tuple[float | None, float]:
    cy, cx = int(round(centre_yx[0])), int(round(centre_yx[1]))
    rois = hazen_rois(cy, cx)
    sub = None
    if b is not None:
        diff = a - b
        sub = float(np.mean([a[r].mean() / (diff[r].std(ddof=1) / math.sqrt(2)) for r in rois]))
    noise = a - ndi.uniform_filter(a, 9, mode="constant")
    smooth = float(np.mean([a[r].mean() / noise[r].std(ddof=1) for r in rois]))
    return sub, smooth


def pct(a: float | None, b: float | None) -> str:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return "-"
    return f"{100 * (a - b) / b:+.1f} %"


def fmt(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hazen", default="/tmp/hazen-venv-snr/bin/hazen", help="hazen executable (2.0.0)")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"real data not present: {DATA}", file=sys.stderr)
        return 1

    from iqa.analysis import analyze_paths
    from iqa.dicom import load
    from iqa.phantoms import flood

    rows = []
    for name in PAIRS + SINGLES:
        path = DATA / name
        with tempfile.TemporaryDirectory() as tmp:
            folder = path
            if path.is_file():      # hazen takes a folder; give it one holding only this file
                folder = Path(tmp)
                (folder / (path.stem + ".dcm")).symlink_to(path)
            hz = hazen_values(run_hazen(args.hazen, folder))
        outcome = analyze_paths([path], phantom="mr-flood")
        if outcome.failures:
            rows.append((name, "iqa failed: " + "; ".join(map(str, outcome.failures))))
            continue
        series = load([path]).series
        imgs = [np.asarray(s.volume[flood._slice_index(s)], dtype=np.float64) for s in series]
        loc = flood.localize(imgs[0], series[0].pixel_spacing_mm)
        ours_sub, ours_smooth = iqa_with_hazen_rois(imgs[0], imgs[1] if len(imgs) > 1 else None, loc.centre_yx)
        res = outcome.results
        iqa_sub = res[0].metrics["snr_subtraction"].value if "snr_subtraction" in res[0].metrics else None
        iqa_single = [r.metrics["snr"].value if "snr" in r.metrics else None for r in res]
        rayleigh = [r.details["background"]["snr_if_rayleigh"] for r in res]
        hz_sub = hz["subtraction"][0] if hz["subtraction"] else None
        rows.append((name, iqa_sub, hz_sub, ours_sub, iqa_single, rayleigh, hz["smoothing"], ours_smooth))

    print("| data | iqa snr_subtraction (NEMA, 75 % ROI) | hazen subtraction | diff | iqa, hazen ROIs "
          "| iqa snr (NEMA background) | iqa background SD/0.655 if used anyway | hazen smoothing | "
          "iqa, hazen smoothing recipe (image 1) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if len(row) == 2:
            print(f"| {row[0]} | {row[1]} |")
            continue
        name, iqa_sub, hz_sub, ours_sub, single, rayleigh, hz_smooth, ours_smooth = row
        print(f"| {name} | {fmt(iqa_sub)} | {fmt(hz_sub)} | {pct(iqa_sub, hz_sub)} | {fmt(ours_sub)} "
              f"| {', '.join(fmt(v) for v in single)} | {', '.join(fmt(v) for v in rayleigh)} "
              f"| {', '.join(fmt(v) for v in hz_smooth)} | {fmt(ours_smooth)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
