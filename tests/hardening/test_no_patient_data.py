"""No patient data kept (issue 9, Security): phantom scans still carry PatientName, PatientID and
PatientBirthDate; none of iqa's outputs, logs, store bytes, report or quarantine may hold them.

The fixtures get distinctive values (strings that occur nowhere else) and every path a header
can take out of iqa is run with logging captured at DEBUG: ``iqa analyze`` in all three formats
and with ``--store``, ``iqa batch`` with a quarantine report (a bad file carries the same patient
fields), ``iqa trend``, ``iqa report`` and the DICOM listener fed by a pynetdicom SCU.  Then
every byte written (SQLite main file, -wal and -shm included), everything printed and every
log record is searched.  The received DICOM files in the listener's incoming folder are the
scanner's own images and are excluded.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import generate_uid

NAME = "Doe^Jane^ZZPHI"
PATIENT_ID = "PHI-735911"
BIRTH_DATE = "19020304"
OTHER_ID = "ZZOTHERID"
#: every form a leak could take: each name component, the ID, the date raw and ISO-formatted
NEEDLES = ["ZZPHI", "Doe^Jane", "Jane", PATIENT_ID, "735911", BIRTH_DATE, "1902-03-04", OTHER_ID]


def _phi(ds) -> None:
    ds.PatientName = NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.OtherPatientIDs = OTHER_ID
    ds.PatientComments = f"{NAME} {PATIENT_ID}"


def _patch(folder: Path) -> None:
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        _phi(ds)
        ds.save_as(path, enforce_file_format=True)


def _leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        hay = text.decode("latin-1")
    else:
        hay = text
    return [n for n in NEEDLES if n.lower() in hay.lower()]


@pytest.fixture(scope="module")
def archive(tmp_path_factory, fixture_dir) -> Path:
    """CT water (2 slices) + MR flood (two acquisitions) + two bad files, all with patient fields."""
    root = tmp_path_factory.mktemp("phi_archive")
    shutil.copytree(fixture_dir("ct-water", seed=21, matrix=128, n_slices=2), root / "ct")
    shutil.copytree(fixture_dir("mr-flood", seed=21, matrix=128), root / "mr")
    for p in root.rglob("truth.json"):
        p.unlink()
    _patch(root)
    first = sorted((root / "ct").glob("*.dcm"))[0]
    bad = root / "bad"
    bad.mkdir()
    ds = pydicom.dcmread(first)                  # a CT slice without pixel data
    del ds.PixelData
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["phi-nopixels"])
    ds.save_as(bad / "nopixels.dcm", enforce_file_format=True)
    ds = pydicom.dcmread(first)                  # a CT slice without PixelSpacing
    del ds.PixelSpacing
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["phi-nospacing"])
    ds.save_as(bad / "nospacing.dcm", enforce_file_format=True)
    # the patient fields really are in the input (the search below would otherwise prove nothing)
    assert _leaks(first.read_bytes())
    assert _leaks((bad / "nopixels.dcm").read_bytes())
    return root


def _run(runner: CliRunner, args: list[str]):
    from iqa.cli.main import cli

    res = runner.invoke(cli, args, catch_exceptions=False)
    return res, res.stdout + res.stderr


def _files_bytes(folder: Path, *, exclude: Path | None = None) -> dict[str, bytes]:
    out = {}
    for p in folder.rglob("*"):
        if p.is_file() and not (exclude and exclude in p.parents):
            out[str(p)] = p.read_bytes()
    return out


def test_cli_outputs_store_report_quarantine_and_logs_hold_no_patient_data(archive, tmp_path, caplog):
    runner = CliRunner()
    out = tmp_path / "out"
    out.mkdir()
    db = out / "qa.sqlite"
    printed: dict[str, str] = {}
    with caplog.at_level(logging.DEBUG):
        for fmt in ("json", "table", "csv"):
            res, text = _run(runner, ["analyze", str(archive), "--format", fmt])
            assert res.exit_code == 1, text       # the two bad files fail, the rest are analysed
            printed[f"analyze {fmt}"] = text
        res, text = _run(runner, ["analyze", str(archive / "ct"), str(archive / "mr"), "--format", "json",
                                  "--output", str(out / "results.json"), "--store", str(db)])
        assert res.exit_code == 0, text
        printed["analyze --store"] = text
        res, text = _run(runner, ["batch", str(archive), "--store", str(out / "batch.sqlite"), "--workers", "1",
                                  "--quarantine", str(out / "quarantine.csv"), "--no-progress"])
        assert res.exit_code == 1, text
        printed["batch"] = text
        for fmt in ("json", "table"):
            res, text = _run(runner, ["trend", "--store", str(db), "--format", fmt])
            assert res.exit_code == 0, text
            printed[f"trend {fmt}"] = text
        res, text = _run(runner, ["report", "--store", str(db), "--output", str(out / "report.html")])
        assert res.exit_code == 0, text
        printed["report"] = text

    # what was produced is real: results, stored series, quarantined bad files, a report
    assert '"snr"' in printed["analyze json"] and '"water_hu"' in printed["analyze json"]
    quarantine = (out / "quarantine.csv").read_text()
    assert "nopixels.dcm" in quarantine and "nospacing.dcm" in quarantine
    assert (out / "report.html").stat().st_size > 1000
    # the bad files' error lines name the file and the reason, and only that
    for line in (printed["analyze json"] + printed["batch"]).splitlines():
        if "nopixels.dcm" in line or "nospacing.dcm" in line:
            assert not _leaks(line), line

    leaks = {k: _leaks(v) for k, v in printed.items() if _leaks(v)}
    written = _files_bytes(out)
    assert any(name.endswith("-wal") or name.endswith("-shm") for name in written) or len(written) >= 4
    leaks.update({k: _leaks(v) for k, v in written.items() if _leaks(v)})
    logs = [(r.name, r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else ""))
            for r in caplog.records]
    leaks.update({f"log {name}": _leaks(msg) for name, msg in logs if _leaks(msg)})
    assert not leaks, leaks


def test_store_files_while_open_hold_no_patient_data(archive, tmp_path):
    """The -wal and -shm files exist only while a connection is open: search them then."""
    from iqa.analysis import analyze_paths
    from iqa.store import Store

    outcome = analyze_paths([archive / "ct", archive / "mr"])
    assert len(outcome.results) == 3 and not outcome.failures
    db = tmp_path / "open.sqlite"
    with Store(db) as store:
        for r in outcome.results:
            store.add_result(r)
        side = [p for p in tmp_path.iterdir() if p.name.startswith("open.sqlite")]
        assert any(p.name.endswith("-wal") for p in side), side
        blobs = {p.name: p.read_bytes() for p in side}
    assert sum(len(b) for b in blobs.values()) > 4096
    assert not {k: _leaks(v) for k, v in blobs.items() if _leaks(v)}
    # and the result objects themselves (what any caller would serialise)
    for r in outcome.results:
        assert not _leaks(repr(r.to_dict())), r.series_uid


def test_listener_received_series_leave_no_patient_data(archive, tmp_path, caplog):
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    from iqa.listen import Listener, ListenerConfig

    incoming = tmp_path / "incoming"
    db = tmp_path / "listen.sqlite"
    files = sorted((archive / "ct").glob("*.dcm")) + sorted((archive / "bad").glob("*.dcm"))
    failures: list[str] = []
    results: list[dict] = []
    with caplog.at_level(logging.DEBUG):
        listener = Listener(ListenerConfig(incoming=incoming, store=db, port=0, quiet_s=0.3),
                            on_result=results.append, on_failure=failures.append).start()
        try:
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(CTImageStorage)
            ae.add_requested_context(MRImageStorage)
            assoc = ae.associate("127.0.0.1", listener.port, ae_title="IQA")
            assert assoc.is_established
            statuses = [assoc.send_c_store(pydicom.dcmread(p)) for p in files]
            assoc.release()
            end = time.monotonic() + 30
            while time.monotonic() < end and not results:
                time.sleep(0.1)
        finally:
            listener.stop()
    assert statuses[0] and statuses[0].Status == 0x0000
    assert results and results[0]["phantom"] == "water"
    assert any(_leaks(p.read_bytes()) for p in incoming.rglob("*.dcm"))   # received as sent, PHI and all
    assert any(r.name.startswith("iqa.listen") for r in caplog.records)
    leaks = {k: _leaks(v) for k, v in _files_bytes(tmp_path, exclude=incoming).items() if _leaks(v)}
    leaks.update({f"failure {m}": _leaks(m) for m in failures if _leaks(m)})
    leaks.update({f"result {r['series_uid']}": _leaks(repr(r)) for r in results if _leaks(repr(r))})
    for r in caplog.records:
        msg = r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        if _leaks(msg):
            leaks[f"log {r.name}: {msg[:200]}"] = _leaks(msg)
    assert not leaks, leaks
