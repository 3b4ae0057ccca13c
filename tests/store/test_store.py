"""Trend store: schema and migrations, idempotency, versions, protocol keys, events, alarms,
patient data kept out, concurrent writers, read-only and full disks."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from iqa.errors import StoreError
from iqa.store import MIGRATIONS, Store, protocol_key, version_rank

CT_PROTOCOL = {"kvp": 120.0, "kernel": "STANDARD", "slice_thickness_mm": 5.0, "mas": 200.0}
SCANNER = {"manufacturer": "GE", "model": "Revolution", "station": "CT01", "serial": "SN1"}


def result(i: int, *, value: float = 0.0, version: str = "0.1.0", protocol=None, day0=dt.date(2026, 9, 1),
           metrics=None, scanner=None) -> dict:
    """A CT water result dict for day ``day0 + i``."""
    return {"schema": "iqa.result/1", "series_uid": f"1.2.826.0.1.{i}", "modality": "CT", "phantom": "water",
            "scanner": dict(scanner or SCANNER),
            "acquired": (day0 + dt.timedelta(days=i)).isoformat() + "T08:00:00",
            "protocol": dict(protocol or CT_PROTOCOL),
            "metrics": metrics or {"water_hu": {"value": value, "unit": "HU", "status": "pass",
                                                "limits": {"tolerance": [-4, 4]}, "criterion": "CT daily"},
                                   "noise_hu": {"value": 5.0 + value / 10, "unit": "HU", "status": "info"}},
            "warnings": [], "files": ["a.dcm", "b.dcm"], "iqa_version": version}


def current_values(st: Store) -> list[tuple]:
    return st.connection.execute("SELECT s.uid, r.metric, r.value, r.iqa_version FROM results r JOIN series s "
                                 "ON s.id = r.series_id WHERE r.current = 1 ORDER BY s.uid, r.metric").fetchall()


def test_new_store_is_migrated_wal_with_foreign_keys(tmp_path):
    db = tmp_path / "qa.db"
    with Store(db) as st:
        names = [n for n, _ in st.migrations()]
        assert names == [n for n, _ in MIGRATIONS]
        assert st.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):   # foreign keys really enforced
            st.connection.execute("INSERT INTO series (uid, scanner_id, phantom, protocol_key, protocol, modality, "
                                  "stored_at) VALUES ('x', 999, 'water', '-', '{}', 'CT', 'now')")
        applied = st.migrations()
    with Store(db) as st:                          # reopening applies nothing twice
        assert st.migrations() == applied


def test_an_older_store_is_migrated_in_place_and_keeps_its_data(tmp_path, monkeypatch):
    import iqa.store
    db = tmp_path / "old.db"
    monkeypatch.setattr(iqa.store, "MIGRATIONS", MIGRATIONS[:1])
    with Store(db) as st:
        with pytest.raises(sqlite3.OperationalError):     # the stream columns of 0002 are not there yet
            st.connection.execute("SELECT protocol FROM streams")
        st.connection.execute("BEGIN")
        st.connection.execute("INSERT INTO scanners (id, key) VALUES (1, 'Revolution/SN1')")
        st.connection.execute("INSERT INTO series (id, uid, scanner_id, phantom, protocol_key, protocol, acquired, "
                              "modality, stored_at) VALUES (1, '1.2.3', 1, 'water', 'kvp=120', '{\"kvp\": 120}', "
                              "'2026-09-01T08:00:00', 'CT', 'x')")
        st.connection.execute("INSERT INTO streams (id, scanner_id, phantom, protocol_key, metric) "
                              "VALUES (1, 1, 'water', 'kvp=120', 'water_hu')")
        st.connection.execute("COMMIT")
        assert [n for n, _ in st.migrations()] == ["0001_initial"]
    monkeypatch.setattr(iqa.store, "MIGRATIONS", MIGRATIONS)
    with Store(db) as st:
        assert [n for n, _ in st.migrations()] == [n for n, _ in MIGRATIONS]
        assert st.connection.execute("SELECT modality, protocol FROM streams").fetchall() == [("CT", '{"kvp": 120}')]
        assert st.counts()["series"] == 1


def test_foreign_or_newer_databases_are_refused(tmp_path):
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE patients (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not an iqa trend store"):
        Store(other)
    newer = tmp_path / "newer.db"
    with Store(newer) as st:
        st.connection.execute("INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future', 'x')")
    with pytest.raises(StoreError, match="newer iqa"):
        Store(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not an iqa trend store"):
        Store(junk)


def test_several_series_are_stored_all_or_nothing(tmp_path):
    """A task's results (an MR pair) share one transaction: one bad result stores none of them."""
    bad = result(1, metrics={"snr": {"value": 10.0, "unit": "", "limits": {"min": float("nan")}}})
    with Store(tmp_path / "qa.db") as st:
        with pytest.raises(StoreError, match="1.2.826.0.1.1, metric snr: not storable"):
            st.add_results([result(0), bad])
        assert st.counts()["series"] == 0
        assert st.add_results([result(0), result(1)]) == 2
        assert st.add_results([result(0), result(1), result(2)]) == 1    # idempotent per series
        assert st.counts()["series"] == 3


def test_storing_the_same_series_twice_changes_nothing(tmp_path):
    with Store(tmp_path / "qa.db") as st:
        assert st.add_result(result(0, value=1.5)) is True
        first = st.counts()
        assert first["series"] == 1 and first["results"] == 2 and first["streams"] == 2
        assert st.add_result(result(0, value=1.5)) is False
        assert st.add_result(result(0, value=9.9)) is False       # same version: first analysis kept
        assert st.counts() == first
        assert [v for _, m, v, _ in current_values(st) if m == "water_hu"] == [1.5]
        assert st.has_series("1.2.826.0.1.0") and not st.has_series("1.2.826.0.1.7")


def test_reanalysis_with_newer_version_is_kept_beside_and_used(tmp_path):
    with Store(tmp_path / "qa.db") as st:
        st.add_result(result(0, value=1.0, version="0.1.0"))
        assert st.add_result(result(0, value=2.0, version="0.10.0")) is True
        assert st.counts()["results"] == 4 and st.counts()["series"] == 1
        # an older analysis arriving late is kept but does not take over
        assert st.add_result(result(0, value=3.0, version="0.9.1")) is True
        assert st.counts()["results"] == 6
        assert current_values(st) == [("1.2.826.0.1.0", "noise_hu", 5.2, "0.10.0"),
                                      ("1.2.826.0.1.0", "water_hu", 2.0, "0.10.0")]
        assert st.has_series("1.2.826.0.1.0", "0.9.1") and not st.has_series("1.2.826.0.1.0", "0.2.0")
        (days, values), = st.read_series([1]).values()
        assert values.tolist() == [2.0]


def test_series_cache_is_used_and_invalidated_by_new_results(tmp_path):
    db = tmp_path / "qa.db"
    with Store(db) as st:
        for i in (0, 2, 1):                                   # stored out of order
            st.add_result(result(i, value=float(i)))
        cold = st.read_series()
        assert st.connection.execute("SELECT COUNT(*) FROM stream_cache").fetchone()[0] == 2
        st.connection.execute("UPDATE results SET value = -99")      # behind the store's back: cache answers
        warm = st.read_series()
        assert {k: (d.tolist(), v.tolist()) for k, (d, v) in warm.items()} == \
               {k: (d.tolist(), v.tolist()) for k, (d, v) in cold.items()}
        water = st.connection.execute("SELECT id FROM streams WHERE metric = 'water_hu'").fetchone()[0]
        assert cold[water][1].tolist() == [0.0, 1.0, 2.0]
        assert (np.diff(cold[water][0]) == 1).all()
        st.add_result(result(3, value=3.0))                  # a new result invalidates its series
        fresh = st.read_series([water])
        assert fresh[water][1].tolist() == [-99.0, -99.0, -99.0, 3.0]
        st.add_result(result(3, value=3.0))                  # idempotent: no invalidation
        assert st.connection.execute("SELECT version FROM streams WHERE id = ?", (water,)).fetchone()[0] == 4
    with Store(db, readonly=True) as st:                     # read-only: read, never write the cache
        assert st.read_series([water])[water][1].tolist() == [-99.0, -99.0, -99.0, 3.0]


def test_version_rank_orders_releases_numerically_and_prereleases_first():
    order = ["0.1.0", "0.2.0.dev1", "0.2.0", "0.10.0", "1.0"]
    assert sorted(order, key=version_rank) == order


def test_protocol_key_rounds_vendor_noise_and_separates_real_changes():
    mr = {"tr_ms": 500.0, "te_ms": 20.0, "coil": "HEAD", "field_strength_t": 1.5, "slice_thickness_mm": 5.0}
    philips = dict(mr, tr_ms=499.9998, te_ms=20.0001, slice_thickness_mm=4.99999, coil=" HEAD ")
    assert protocol_key("MR", philips) == protocol_key("MR", mr) == \
        "field_strength_t=1.5 coil=HEAD tr_ms=500 te_ms=20 slice_thickness_mm=5"
    for change in ({"tr_ms": 1000.0}, {"te_ms": 30.0}, {"coil": "BODY"}, {"field_strength_t": 3.0},
                   {"slice_thickness_mm": 3.0}):
        assert protocol_key("MR", dict(mr, **change)) != protocol_key("MR", mr), change
    ct = protocol_key("CT", CT_PROTOCOL)
    assert ct == "kvp=120 kernel=STANDARD slice_thickness_mm=5"      # mAs is not part of the key
    assert protocol_key("CT", dict(CT_PROTOCOL, mas=250.0)) == ct
    assert protocol_key("CT", dict(CT_PROTOCOL, kvp=119.9999)) == ct
    assert protocol_key("CT", dict(CT_PROTOCOL, slice_thickness_mm=0.625)) == \
        "kvp=120 kernel=STANDARD slice_thickness_mm=0.625"
    for change in ({"kvp": 100.0}, {"kernel": "BONE"}, {"slice_thickness_mm": 2.5}):
        assert protocol_key("CT", dict(CT_PROTOCOL, **change)) != ct, change


def test_a_protocol_change_starts_a_new_trend_series(tmp_path):
    with Store(tmp_path / "qa.db") as st:
        for i in range(5):
            st.add_result(result(i))
        for i in range(5, 8):
            st.add_result(result(i, protocol=dict(CT_PROTOCOL, kernel="BONE")))
        st.add_result(result(8, protocol=dict(CT_PROTOCOL, kvp=119.99)))     # rounding: same series
        rows = st.connection.execute("SELECT protocol_key, COUNT(*) FROM results r JOIN streams s "
                                     "ON s.id = r.stream_id WHERE s.metric = 'water_hu' GROUP BY protocol_key "
                                     "ORDER BY protocol_key").fetchall()
    assert rows == [("kvp=120 kernel=BONE slice_thickness_mm=5", 3),
                    ("kvp=120 kernel=STANDARD slice_thickness_mm=5", 6)]


def test_events_are_validated_and_idempotent(tmp_path):
    with Store(tmp_path / "qa.db") as st:
        with pytest.raises(StoreError, match="no scanner 'Revolution/SN1'.*none yet"):
            st.add_event("Revolution/SN1", "pm", dt.date(2026, 9, 3))
        st.add_result(result(0))
        with pytest.raises(StoreError, match="no scanner 'Revolution/SN2'.*known: Revolution/SN1"):
            st.add_event("Revolution/SN2", "pm", dt.date(2026, 9, 3))
        with pytest.raises(StoreError, match="kind 'repair' unknown"):
            st.add_event("Revolution/SN1", "repair", dt.date(2026, 9, 3))
        st.add_event("Revolution/SN1", "tube", dt.date(2026, 9, 3), "tube replaced")
        st.add_event("Revolution/SN1", "tube", dt.date(2026, 9, 3), "tube replaced")
        st.add_event("Revolution/SN1", "calibration", "2026-09-04")
        assert st.events() == [
            {"scanner": "Revolution/SN1", "kind": "tube", "date": "2026-09-03", "note": "tube replaced"},
            {"scanner": "Revolution/SN1", "kind": "calibration", "date": "2026-09-04", "note": ""}]
        assert st.counts()["events"] == 2


def test_record_alarms_counts_only_new_ones(tmp_path):
    trend = {"scanner": "Revolution/SN1", "phantom": "water", "protocol": "kvp=120", "metric": "water_hu",
             "alarms": [{"date": "2026-09-10", "rule": "ewma", "detail": "EWMA 2.1 above 1.9"},
                        {"date": "2026-09-11", "rule": "cusum", "detail": "C+ 5.3 > 5"}]}
    with Store(tmp_path / "qa.db") as st:
        st.add_result(result(0))
        assert st.record_alarms([trend]) == 2
        assert st.record_alarms([trend]) == 0
        more = dict(trend, alarms=trend["alarms"] + [{"date": "2026-09-12", "rule": "ewma", "detail": "x"}])
        assert st.record_alarms([more]) == 1
        assert [a["date"] for a in st.alarms()] == ["2026-09-10", "2026-09-11", "2026-09-12"]
        assert st.record_alarms([]) == 0


def test_no_patient_data_reaches_the_store(tmp_path):
    """A phantom scan still carries PatientName/ID; neither may end up in the database."""
    from iqa.analysis import judge
    from iqa.criteria import Criteria
    from iqa.dicom import load_series
    from iqa.fixtures.dicomio import ScannerInfo, SeriesSpec, write_series
    from iqa.result import PhantomAnalysis

    # A PACS export folder named after the patient, as happens in practice.
    folder = tmp_path / "QA^PHANTOM_PHANTOM01"
    images = np.zeros((2, 32, 32))
    spec = SeriesSpec("CT", images, (1.0, 1.0), [0.0, 5.0], 5.0, seed=7, patient_name="QA^PHANTOM",
                      patient_id="PHANTOM01", scanner=ScannerInfo(station="CT01"),
                      protocol={"kvp": 120, "kernel": "STANDARD"})
    write_series(spec, folder)
    series = load_series(folder)
    analysis = PhantomAnalysis("water")
    analysis.add("water_hu", float(series.volume.mean()), "HU")
    res = judge(analysis, series, Criteria.default())
    sneaky = res.to_dict()
    sneaky["patient"] = {"name": "QA^PHANTOM", "id": "PHANTOM01"}
    sneaky["protocol"]["patient_id"] = "PHANTOM01"
    sneaky["uid"] = series.uid
    sneaky["series_uid"] = series.uid + ".9"
    db = tmp_path / "qa.db"
    with Store(db) as st:
        assert st.add_result(res)
        assert st.add_result(sneaky)
        assert st.counts()["results"] == 2
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("qa.db*"))
    assert series.uid.encode() in blob                   # the store really holds the series ...
    for secret in (b"QA^PHANTOM", b"PHANTOM01", b"PHANTOM", "QA^PHANTOM".encode("utf-16-le")):
        assert secret not in blob, secret                # ... but nothing of the patient module


WRITER = textwrap.dedent("""
    import sys, datetime as dt
    from iqa.store import Store
    db, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Store(db) as st:
        for i in range(n):
            st.add_result({"series_uid": f"1.2.{tag}.{i}", "modality": "CT", "phantom": "water",
                           "scanner": {"model": "M", "serial": tag}, "iqa_version": "0.1.0",
                           "acquired": (dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat(),
                           "protocol": {"kvp": 120}, "metrics": {"water_hu": {"value": i * 0.1, "unit": "HU"},
                                                                 "noise_hu": {"value": 5.0, "unit": "HU"}}})
            if i % 10 == 0:
                st.add_event(f"M/{tag}", "pm", dt.date(2026, 1, 1) + dt.timedelta(days=i))
    print("done", tag)
""")


READER = textwrap.dedent("""
    import sys, time
    from iqa.store import Store
    with Store(sys.argv[1]) as st:
        deadline = time.monotonic() + 60
        reads = 0
        while time.monotonic() < deadline:
            st.read_series()          # refreshes the series cache while the writers write
            reads += 1
            if st.counts()["series"] >= int(sys.argv[2]):
                break
    print("reads", reads)
""")


def test_concurrent_writer_processes_never_fail_locked(tmp_path):
    """Three writers and a cache-refreshing reader at once: no lock error, nothing lost, cache exact."""
    from iqa.store import _scan
    db = tmp_path / "qa.db"
    Store(db).close()
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), tag, str(n)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for tag in ("A", "B", "C")]
    procs.append(subprocess.Popen([sys.executable, "-c", READER, str(db), str(3 * n)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "locked" not in err
    with Store(db) as st:
        c = st.counts()
        cached = st.read_series()
        truth = _scan(st.connection, None)
    assert c["series"] == 3 * n and c["results"] == 6 * n and c["events"] == 3 * 15 and c["scanners"] == 3
    assert cached.keys() == truth.keys() and len(truth) == 6
    for k in truth:
        assert cached[k][0].tolist() == truth[k][0].tolist() and cached[k][1].tolist() == truth[k][1].tolist()


def _child(code: str, *args: str, unprivileged: bool = False) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; ``unprivileged`` drops root's power to ignore file modes."""
    cmd = [sys.executable, "-c", code, *args]
    if unprivileged:
        # CAP_DAC_OVERRIDE lets root write a 0444 file; without it the owner's r-- bits apply.
        cmd = ["setpriv", "--inh-caps=-dac_override,-fowner", "--bounding-set=-dac_override,-fowner", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


ADD_ONE = textwrap.dedent("""
    import sys
    from iqa.store import Store
    from iqa.errors import StoreError
    try:
        with Store(sys.argv[1]) as st:
            st.add_result({"series_uid": "9.9.9", "modality": "CT", "phantom": "water", "iqa_version": "0.1.0",
                           "scanner": {"model": "M", "serial": "S"}, "acquired": "2026-09-01T08:00:00",
                           "protocol": {}, "metrics": {f"m{i}": {"value": 1.0, "unit": "HU"} for i in range(int(sys.argv[2]))}})
    except StoreError as exc:
        print("StoreError:", exc)
        sys.exit(3)
""")


def _filled_store(path: Path) -> dict:
    with Store(path) as st:
        for i in range(3):
            st.add_result(result(i))
        return st.counts()


def test_read_only_store_gives_a_clear_error_and_stores_nothing(tmp_path):
    """A store the user may not write: a copy chmod'ed 0444, written by an unprivileged process."""
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux): cannot make a file really read-only")
    db = tmp_path / "qa.db"
    before = _filled_store(db)
    ro = tmp_path / "ro.db"
    shutil.copy(db, ro)
    os.chmod(ro, 0o444)
    proc = _child(ADD_ONE, str(ro), "3", unprivileged=as_root)
    assert proc.returncode == 3, proc.stderr
    assert "read-only" in proc.stdout and str(ro) in proc.stdout
    assert "Traceback" not in proc.stderr
    os.chmod(ro, 0o644)
    with Store(ro) as st:
        assert st.counts() == before and not st.has_series("9.9.9")
    # The library's own read-only mode (mode=ro URI) refuses writes the same way.
    with Store(db, readonly=True) as st:
        assert st.counts() == before
        with pytest.raises(StoreError, match="read-only"):
            st.add_result(result(9))
        with pytest.raises(StoreError, match="read-only"):
            st.add_event("Revolution/SN1", "pm", dt.date(2026, 9, 2))
    with Store(db) as st:
        assert st.counts() == before


FULL = textwrap.dedent("""
    import resource, signal, sys, os
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # write() then fails with EFBIG, like ENOSPC
    limit = os.path.getsize(sys.argv[1]) + 16384
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
""") + ADD_ONE


def test_full_disk_gives_a_clear_error_and_stores_nothing(tmp_path):
    """The file-size limit makes every write past it fail, as on a full disk."""
    db = tmp_path / "qa.db"
    before = _filled_store(db)
    proc = _child(FULL, str(db), "5000")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "disk is full" in proc.stdout
    with Store(db) as st:
        assert st.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert st.counts() == before and not st.has_series("9.9.9")
    # With room again, the same series goes in whole.
    assert _child(ADD_ONE, str(db), "5000").returncode == 0
    with Store(db) as st:
        assert st.counts()["results"] == before["results"] + 5000


def test_bad_values_are_refused_whole_and_non_finite_ones_skipped(tmp_path):
    with Store(tmp_path / "qa.db") as st:
        bad = result(0)
        bad["metrics"]["water_hu"]["limits"] = {"tolerance": [float("-inf"), 4.0]}
        with pytest.raises(StoreError, match="metric water_hu: not storable"):
            st.add_result(bad)
        bad = result(0)
        bad["metrics"]["noise_hu"]["value"] = "high"
        with pytest.raises(StoreError, match="metric noise_hu"):
            st.add_result(bad)
        assert st.counts()["series"] == 0
        odd = result(1)
        odd["metrics"]["noise_hu"]["value"] = float("nan")
        odd["acquired"] = dt.datetime(2026, 9, 2, 8, 0, 0)            # a datetime, not text
        assert st.add_result(odd)
        assert st.connection.execute("SELECT metric, day, acquired FROM results").fetchall() == \
            [("water_hu", dt.date(2026, 9, 2).toordinal(), "2026-09-02T08:00:00")]
