"""iqa batch: every series stored once, reruns idempotent, crash-resumable, bad files quarantined,
Dask distributed giving the same results as local processes.

Ground truth: the archive fixture's truth.json lists every series it wrote.
"""
from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from iqa.cli.main import cli

pytestmark = pytest.mark.xdist_group("batch")   # heavy: keep these on one worker


def _table(store: Path) -> list[tuple]:
    """The stored results as comparable rows (no row ids, no timestamps)."""
    con = sqlite3.connect(store)
    try:
        return con.execute(
            "SELECT s.uid, r.metric, round(r.value, 9), r.unit, r.status FROM results r "
            "JOIN series s ON s.id = r.series_id ORDER BY s.uid, r.metric").fetchall()
    finally:
        con.close()


def _n_series(store: Path) -> int:
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT COUNT(*) FROM series").fetchone()[0]
    finally:
        con.close()


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory) -> Path:
    from iqa.fixtures import generate
    out = tmp_path_factory.mktemp("archive_small")
    generate("archive", out, days=12, scanners=2, seed=3)
    return out


@pytest.fixture(scope="module")
def reference_store(small_archive, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("ref") / "ref.sqlite"
    res = CliRunner().invoke(cli, ["batch", str(small_archive), "--store", str(store), "--workers", "1",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    return store


def test_full_60_day_4_scanner_archive_then_rerun_adds_nothing(tmp_path):
    from iqa.fixtures import generate
    truth = generate("archive", tmp_path / "archive", days=60, scanners=4, seed=0)
    store = tmp_path / "qa.sqlite"
    runner = CliRunner()
    res = runner.invoke(cli, ["batch", str(tmp_path / "archive"), "--store", str(store), "--workers", "2",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    expected = sum(2 if s["phantom"] == "mr-flood" else 1 for s in truth["series"])   # MR: two acquisitions a day
    assert _n_series(store) == expected
    before = _table(store)
    res2 = runner.invoke(cli, ["batch", str(tmp_path / "archive"), "--store", str(store), "--no-progress"])
    assert res2.exit_code == 0
    assert f"0 analysed, {expected} already stored" in res2.output
    assert _table(store) == before


def test_kill_9_half_way_then_rerun_equals_uninterrupted(small_archive, reference_store, tmp_path):
    store = tmp_path / "crash.sqlite"
    total = _n_series(reference_store)
    cmd = [sys.executable, "-m", "iqa.cli.main", "batch", str(small_archive), "--store", str(store),
           "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                if _n_series(store) >= total // 2:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _n_series(store)
    assert 0 < partial < total, "the kill must land part way"
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    res = CliRunner().invoke(cli, ["batch", str(small_archive), "--store", str(store), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _table(store) == _table(reference_store)


def test_rerun_after_one_acquisition_of_a_pair_was_stored_equals_uninterrupted(small_archive, reference_store,
                                                                                 tmp_path):
    """The state a kill between the two halves of an MR pair used to leave, made deterministic:
    the rerun must form the same pairs (and complete the stored half's ``snr_subtraction``)."""
    first_day = sorted((small_archive / "MR01").iterdir())[0]
    store = tmp_path / "half.sqlite"
    res = CliRunner().invoke(cli, ["batch", str(first_day / "acquisition1"), "--store", str(store),
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _n_series(store) == 1
    res = CliRunner().invoke(cli, ["batch", str(small_archive), "--store", str(store), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"{_n_series(reference_store) - 1} analysed, 1 already stored" in res.output
    assert _table(store) == _table(reference_store)


def test_a_day_with_one_acquisition_does_not_shift_later_pairs(small_archive, reference_store, tmp_path):
    """NEMA pairs are two acquisitions of one session: a missing second acquisition leaves that
    day unpaired and every other day's subtraction SNR as in the complete archive."""
    import shutil
    archive = tmp_path / "gappy"
    shutil.copytree(small_archive, archive)
    days = sorted((archive / "MR01").iterdir())
    lone_day = days[len(days) // 2]
    shutil.rmtree(lone_day / "acquisition2")
    store = tmp_path / "gappy.sqlite"
    res = CliRunner().invoke(cli, ["batch", str(archive), "--store", str(store), "--no-progress"])
    assert res.exit_code == 0, res.output
    ref = {(uid, metric): v for uid, metric, v, *_ in _table(reference_store)}
    got = {(uid, metric): v for uid, metric, v, *_ in _table(store)}
    lone = {uid for uid, metric in got if metric == "snr"} - {uid for uid, metric in got if metric == "snr_subtraction"}
    assert len(lone) == 1                                # only the day without its partner
    assert {k: v for k, v in ref.items() if k[0] not in lone and k in got} == {
        k: v for k, v in got.items() if k[0] not in lone}
    removed = {uid for uid, _ in ref} - {uid for uid, _ in got}
    assert len(removed) == 1                             # the deleted acquisition
    assert len(got) == len(ref) - sum(uid in removed for uid, _ in ref) - 1   # the lone one lost only its pair metric


def test_bad_files_are_quarantined_and_good_series_stored(small_archive, reference_store, tmp_path):
    import shutil
    archive = tmp_path / "mixed"
    shutil.copytree(small_archive, archive)
    some = next(p for p in sorted(archive.rglob("*")) if p.is_file() and p.name != "truth.json")
    bad = archive / "junk"
    bad.mkdir()
    (bad / "zero.dcm").write_bytes(b"")
    (bad / "truncated.dcm").write_bytes(some.read_bytes()[:600])
    (bad / "random.dcm").write_bytes(os.urandom(4096))
    store = tmp_path / "q.sqlite"
    quarantine = tmp_path / "quarantine.csv"
    res = CliRunner().invoke(cli, ["batch", str(archive), "--store", str(store), "--workers", "2",
                                   "--quarantine", str(quarantine), "--no-progress"])
    assert res.exit_code == 1
    rows = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(quarantine.open())}
    assert set(rows) == {"zero.dcm", "truncated.dcm", "random.dcm"}
    assert rows["zero.dcm"] == "empty file (0 bytes)"
    assert rows["random.dcm"].startswith("not a DICOM file")
    assert "truncated" in rows["truncated.dcm"] or "corrupt" in rows["truncated.dcm"]
    assert _table(store) == _table(reference_store)   # every good series stored, same values


def test_dask_localcluster_equals_local_run(small_archive, reference_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    from iqa.batch import run_batch
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        summary = run_batch([small_archive], tmp_path / "dask.sqlite", scheduler=cluster.scheduler_address)
    assert summary.failures == [] and summary.analyzed == _n_series(reference_store)
    assert _table(tmp_path / "dask.sqlite") == _table(reference_store)


def test_unreachable_scheduler_is_a_clear_error(small_archive, tmp_path):
    from iqa.batch import run_batch
    from iqa.errors import IqaError
    with pytest.raises(IqaError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_batch([small_archive], tmp_path / "x.sqlite", scheduler="tcp://127.0.0.1:9", scheduler_timeout_s=1)
