"""Fault injection on the batch path (issue 9): repeated kill -9 at random moments, and two
writers on one store.  The store must stay consistent: integrity_check ok, no duplicate
results, and a rerun completes to the same table as an undisturbed run."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.xdist_group("batch")
KILLS = 20


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from iqa.fixtures import generate
    out = tmp_path_factory.mktemp("fault_archive")
    generate("archive", out, days=6, scanners=2, seed=9)
    return out


def _batch(archive: Path, store: Path, workers: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "iqa.cli.main", "batch", str(archive), "--store", str(store),
           "--workers", str(workers), "--no-progress"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _rows(store: Path) -> list[tuple]:
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT s.uid, r.metric, r.iqa_version, round(r.value, 9) FROM results r "
                           "JOIN series s ON s.id = r.series_id ORDER BY 1, 2, 3").fetchall()
    finally:
        con.close()


def _assert_consistent(store: Path) -> None:
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        dup = con.execute("SELECT series_id, metric, iqa_version, COUNT(*) FROM results "
                          "GROUP BY 1, 2, 3 HAVING COUNT(*) > 1").fetchall()
        assert dup == []
        orphans = con.execute("SELECT COUNT(*) FROM series s WHERE NOT EXISTS "
                              "(SELECT 1 FROM results r WHERE r.series_id = s.id)").fetchone()[0]
        assert orphans == 0, "a series was stored without its results (not one transaction)"
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory) -> list[tuple]:
    store = tmp_path_factory.mktemp("fault_ref") / "ref.sqlite"
    p = _batch(archive, store)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    return _rows(store)


def test_repeated_kill_9_never_corrupts_and_rerun_completes(archive, reference, tmp_path):
    store = tmp_path / "killed.sqlite"
    rng = random.Random(1234)
    progress = []
    for _ in range(KILLS):
        p = _batch(archive, store, workers=rng.choice([1, 2]))
        time.sleep(rng.uniform(0.2, 4.0))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        if store.exists():
            _assert_consistent(store)
            progress.append(len(_rows(store)))
    p = _batch(archive, store)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    _assert_consistent(store)
    assert _rows(store) == reference
    assert progress == sorted(progress), "results never disappear after a kill"


def test_two_batch_processes_on_one_store(archive, reference, tmp_path):
    store = tmp_path / "shared.sqlite"
    a, b = _batch(archive, store), _batch(archive, store)
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=600), b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, err_a + err_b
    assert "locked" not in (err_a + err_b).lower()
    _assert_consistent(store)
    assert _rows(store) == reference
