"""Peer section: the same fixture series through pylinac 3.49 and hazen 2.0.0.

Each peer lives in its own virtualenv under ``bench-results/venvs/`` (pylinac pins
pydicom < 3, iqa needs pydicom 3), created here with ``python3 -m venv`` + ``pip install`` on
first use.  A small driver (``_peer_driver.py``) runs in the peer's venv and times the peer's
load + analyse call itself (imports excluded).  iqa runs the same folders in this process
just before and just after the peer, so the ratio compares like with like under the same
load.  Where a peer cannot analyse a fixture its error line goes into the table.

Fixture choices for the peers' sake (iqa reads the same folders): CatPhan with 41 slices
(pylinac's stack wants at least 39 images), MR fixtures with Manufacturer "Siemens" (hazen
refuses a manufacturer it does not know).  hazen's ``acr_all`` wants three folders (T1, T2, sagittal localiser) told apart by TR/TE;
the fixture has one axial series (TR 500 / TE 20, hazen's T1), so the benchmark writes a
copy of it with TR 2000 / TE 80 and new UIDs as the "T2" series.  iqa then analyses the
same three series.  hazen also needs NumberOfAverages (set to 1 on its copies).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from _common import RESULTS, Row, dicom_files, fixture, interleave, log

DRIVER = Path(__file__).with_name("_peer_driver.py")
VENVS = RESULTS / "venvs"
SPECS = {"pylinac": "pylinac==3.49.*", "hazen": "hazen==2.0.0"}
CHECK = {"pylinac": "import pylinac", "hazen": "import hazenlib"}


def ensure_venv(tool: str) -> tuple[Path | None, str]:
    """The peer venv's python (created and installed when missing) or (None, error line)."""
    venv = VENVS / tool
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", CHECK[tool]], capture_output=True).returncode == 0:
        return py, ""
    log(f"peers: installing {SPECS[tool]} into {venv}")
    VENVS.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        r = subprocess.run([str(py), "-m", "pip", "install", "-q", SPECS[tool]], capture_output=True, text=True,
                           timeout=3600)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not create the {tool} venv: {exc}"
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
        return None, f"pip install {SPECS[tool]} failed: {lines[-1] if lines else r.returncode}"
    return py, ""


def hazen_copy(folders: list[Path], out: Path, *, t2: bool = False) -> Path:
    """One flat folder (hazen does not recurse) with copies of the files of ``folders``.

    hazen needs NumberOfAverages, which the fixtures do not write: it is set to 1 where absent
    (pixels untouched).  ``t2`` re-labels the copy TR 2000 ms / TE 80 ms with new UIDs, hazen's
    T2 slot of ``acr_all``.
    """
    import pydicom
    from pydicom.uid import generate_uid

    if (out / ".complete").exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    series_uid = generate_uid()
    for i, folder in enumerate(folders):
        for f in dicom_files(folder):
            ds = pydicom.dcmread(f)
            if "NumberOfAverages" not in ds:
                ds.NumberOfAverages = 1
            if t2:
                ds.RepetitionTime, ds.EchoTime = 2000, 80
                ds.SeriesInstanceUID = series_uid
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.SeriesDescription = "ACR T2 axial (benchmark copy)"
                ds.SeriesNumber = int(ds.get("SeriesNumber", 1) or 1) + 100
            ds.save_as(out / f"{i}_{f.name}")
    (out / ".complete").write_text("")
    return out


@dataclass
class PeerCase:
    label: str
    tool: str
    task: str
    peer_folders: list[Path]
    iqa_folders: list[Path]
    size: str


def cases() -> list[PeerCase]:
    acr_ct = fixture("acr-ct-464")
    catphan = fixture("catphan-604", n_slices=41)            # pylinac wants at least 39 images
    acr_mr = fixture("acr-mri-large", manufacturer="Siemens")  # hazen refuses unknown manufacturers
    flood = fixture("mr-flood", manufacturer="Siemens")
    inputs = RESULTS / "peer-inputs"
    t1 = hazen_copy([acr_mr / "axial"], inputs / f"{acr_mr.name}-t1")
    t2 = hazen_copy([acr_mr / "axial"], inputs / f"{acr_mr.name}-t2", t2=True)
    sag = hazen_copy([acr_mr / "localizer"], inputs / f"{acr_mr.name}-sag")
    flood_flat = hazen_copy([flood / "acquisition1", flood / "acquisition2"], inputs / f"{flood.name}-pair")
    return [
        PeerCase("acr-ct-464 (43 × 512²)", "pylinac", "ACRCT", [acr_ct], [acr_ct], "43 files"),
        PeerCase("catphan-604 (41 × 512²)", "pylinac", "CatPhan604", [catphan], [catphan], "41 files"),
        PeerCase("acr-mri-large axial (11 × 256²)", "pylinac", "ACRMRILarge", [acr_mr / "axial"],
                 [acr_mr / "axial"], "11 files"),
        PeerCase("acr-mri-large T1 + T2 copy + localizer", "hazen", "acr_all", [t1, t2, sag],
                 [acr_mr / "axial", t2, acr_mr / "localizer"], "23 files"),
        PeerCase("mr-flood pair (2 × 256²)", "hazen", "snr", [flood_flat], [flood], "2 files"),
    ]


def run_peer(py: Path, case: PeerCase, repeat: int, warmup: int) -> dict:
    cmd = [str(py), str(DRIVER), case.tool, case.task, *map(str, case.peer_folders),
           "--repeat", str(repeat), "--warmup", str(warmup)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=RESULTS)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 3600 s", "times_s": []}
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    return {"error": f"driver exited {r.returncode}: {err[-1] if err else ''}"[:300], "times_s": []}


def run(repeat: int = 2) -> list[Row]:
    from iqa.analysis import analyze_paths

    rows: list[Row] = []
    pythons = {tool: ensure_venv(tool) for tool in SPECS}
    for case in cases():
        py, err = pythons[case.tool]
        folders = case.iqa_folders

        def ours(folders=folders):
            out = analyze_paths(folders)
            return out

        got = ours()
        iqa_note = ("iqa failed: " + str(got.failures[0])) if got.failures else ""
        log(f"peers: {case.tool} {case.task} on {case.label}")
        before = interleave([ours], repeat=3)[0]
        heavy = case.task == "acr_all"        # minutes per run on a loaded 2-core machine: once, cold
        peer = (run_peer(py, case, 1 if heavy else repeat, 0 if heavy else 1) if py
                else {"error": err, "times_s": []})
        after = interleave([ours], repeat=3, warmup=0)[0]
        t_iqa = min(before.median_s, after.median_s), max(before.median_s, after.median_s)
        iqa_med = 0.5 * (before.median_s + after.median_s)
        iqa_min = min(before.min_s, after.min_s)
        times = peer.get("times_s") or []
        name = f"{case.tool} {peer.get('version') or ''} {case.task}: {case.label}".replace("  ", " ")
        if peer.get("error") or not times:
            rows.append(Row("peers", name, case.size, iqa_min, iqa_med, before.n + after.n, case.tool, None, None,
                            None, "≥ 10×", None, f"{case.tool} could not analyse it: {peer.get('error')}"
                            + (f"; {iqa_note}" if iqa_note else "")))
            log(f"peers: {case.tool} {case.task} failed: {peer.get('error')}")
            continue
        times.sort()
        peer_med = times[len(times) // 2] if len(times) % 2 else 0.5 * (times[len(times) // 2 - 1] + times[len(times) // 2])
        ratio = peer_med / iqa_med
        note = iqa_note
        if case.task == "acr_all":
            note = (note + "; " if note else "") + "hazen: one cold run, its steps in a process pool (both cores)"
        rows.append(Row("peers", name, case.size, iqa_min, iqa_med, before.n + after.n, case.tool, times[0], peer_med,
                        ratio, "≥ 10×", None if iqa_note else ratio >= 10, note,
                        extra={"peer_summary": peer.get("summary", ""), "iqa_before_after_median_s": list(t_iqa)}))
        log(f"peers: {case.tool} {case.task}: {peer_med:.2f} s vs iqa {iqa_med:.3f} s = {ratio:.0f}x")
    return rows
