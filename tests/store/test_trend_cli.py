"""``iqa trend`` / ``iqa event`` / ``iqa report`` end to end over a store (CliRunner): exit codes,
output and store state; the trend glue (limits, direction, events as restarts, protocol series)."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from click.testing import CliRunner

from iqa.cli.main import cli
from iqa.store import Store

drift = pytest.importorskip("iqa.drift", reason="iqa.drift (statistics) not available yet")

DAY0 = dt.date(2026, 6, 1)
CT = {"manufacturer": "GE", "model": "Revolution", "station": "CT01", "serial": "SN1"}
MR = {"manufacturer": "Philips", "model": "Ingenia", "station": "MR1", "serial": "42"}
CT_PROTO = {"kvp": 120.0, "kernel": "STANDARD", "slice_thickness_mm": 5.0}
MR_PROTO = {"tr_ms": 499.9998, "te_ms": 20.0, "coil": "HEAD", "field_strength_t": 1.5, "slice_thickness_mm": 5.0}


def _res(uid, scanner, modality, phantom, day, proto, metrics):
    return {"series_uid": uid, "modality": modality, "phantom": phantom, "scanner": scanner,
            "acquired": day.isoformat() + "T08:00:00", "protocol": proto, "iqa_version": "0.1.0",
            "metrics": {k: {"value": float(v), "unit": u, "status": "info"} for k, (v, u) in metrics.items()}}


def build(path, *, event_day: int | None = None) -> dict:
    """CT: 30 stable days then +0.25 HU/day (SD 0.7), 80 days; 10 days with a BONE kernel;
    MR: weekly stable SNR, the last one 50 days before the CT's end (stale)."""
    rng = np.random.default_rng(6)
    water = rng.normal(0, 0.7, 80) + np.where(np.arange(80) >= 30, 0.25 * (np.arange(80) - 30), 0)
    with Store(path) as st:
        for i, w in enumerate(water):
            st.add_result(_res(f"1.1.{i}", CT, "CT", "water", DAY0 + dt.timedelta(days=i), CT_PROTO,
                               {"water_hu": (w, "HU"), "noise_hu": (5 + rng.normal(0, 0.08), "HU")}))
        for i in range(10):
            st.add_result(_res(f"1.2.{i}", CT, "CT", "water", DAY0 + dt.timedelta(days=i),
                               dict(CT_PROTO, kernel="BONE"), {"water_hu": (rng.normal(0, 0.7), "HU")}))
        for i in range(4):
            st.add_result(_res(f"2.1.{i}", MR, "MR", "mr-flood", DAY0 + dt.timedelta(days=7 * i),
                               dict(MR_PROTO, tr_ms=500.0 if i % 2 else 499.9998),
                               {"snr": (200 + rng.normal(0, 2), "")}))
        if event_day is not None:
            st.add_event("Revolution/SN1", "tube", DAY0 + dt.timedelta(days=event_day), "tube replaced")
    return {"water": water, "today": DAY0 + dt.timedelta(days=80)}


@pytest.fixture()
def store(tmp_path):
    path = tmp_path / "qa.db"
    info = build(path)
    return path, info


def run(*args):
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return res


def test_trend_json_gives_interface_objects_for_every_series(store):
    path, info = store
    res = run("trend", "--store", path, "--format", "json", "--today", info["today"])
    assert res.exit_code == 0, res.output
    objs = json.loads(res.output)
    keys = [(o["scanner"], o["phantom"], o["protocol"], o["metric"]) for o in objs]
    assert keys == [
        ("Ingenia/42", "mr-flood", "field_strength_t=1.5 coil=HEAD tr_ms=500 te_ms=20 slice_thickness_mm=5", "snr"),
        ("Revolution/SN1", "water", "kvp=120 kernel=BONE slice_thickness_mm=5", "water_hu"),
        ("Revolution/SN1", "water", "kvp=120 kernel=STANDARD slice_thickness_mm=5", "noise_hu"),
        ("Revolution/SN1", "water", "kvp=120 kernel=STANDARD slice_thickness_mm=5", "water_hu")]
    by = {(k[2], k[3]): o for k, o in zip(keys, objs)}
    for o in objs:
        assert {"n", "baseline", "last", "status", "alarms", "forecast"} <= set(o)
        assert o["status"] in ("ok", "watch", "alarm", "out_of_tolerance", "stale", "insufficient")
    water = by[("kvp=120 kernel=STANDARD slice_thickness_mm=5", "water_hu")]
    assert water["n"] == 80 and water["unit"] == "HU"
    assert water["last"] == {"date": (DAY0 + dt.timedelta(days=79)).isoformat(), "value": info["water"][-1]}
    assert water["limits"]["tolerance"] == [-4.0, 4.0]          # CT daily constancy table
    assert water["direction"] == drift.metric_direction("water_hu")
    assert water["status"] == "out_of_tolerance"                 # ends near +12 HU
    assert water["alarms"], "a 0.25 HU/day drift over 50 days must alarm"
    # the glue passes limits and data through: an alarm before the first day outside tolerance and none
    # in the stable 30 days (the lead-time statistics over many histories are tests/drift's job)
    first_breach = DAY0 + dt.timedelta(days=next(i for i, w in enumerate(info["water"]) if abs(w) > 4))
    alarms = [dt.date.fromisoformat(a["date"]) for a in water["alarms"] if a["rule"] in ("ewma", "cusum", "shewhart")]
    assert alarms and min(alarms) < first_breach, (alarms, first_breach)
    assert min(alarms) >= DAY0 + dt.timedelta(days=30)
    assert by[("field_strength_t=1.5 coil=HEAD tr_ms=500 te_ms=20 slice_thickness_mm=5", "snr")]["n"] == 4
    assert by[("kvp=120 kernel=BONE slice_thickness_mm=5", "water_hu")]["n"] == 10
    # alarms were recorded, once
    with Store(path) as st:
        recorded = len(st.alarms())
    assert recorded == sum(len(o["alarms"]) for o in objs) > 0
    assert run("trend", "--store", path, "--format", "json", "--today", info["today"]).exit_code == 0
    with Store(path) as st:
        assert len(st.alarms()) == recorded


def test_trend_filters_and_table(store):
    path, info = store
    res = run("trend", "--store", path, "--scanner", "Revolution/SN1", "--metric", "water_hu", "--format", "json",
              "--today", info["today"], "--no-record")
    objs = json.loads(res.output)
    assert res.exit_code == 0 and len(objs) == 2 and {o["metric"] for o in objs} == {"water_hu"}
    with Store(path) as st:
        assert st.alarms() == []                                    # --no-record
    res = run("trend", "--store", path, "--today", info["today"])
    assert res.exit_code == 0
    assert "Revolution/SN1" in res.output and "Ingenia/42" in res.output and "OUT" in res.output
    assert res.output.count("water_hu") == 2
    assert run("trend", "--store", path, "--scanner", "Nope/0", "--format", "json").output.strip() == "[]"


def test_stale_scanner_is_flagged(store):
    path, info = store
    objs = json.loads(run("trend", "--store", path, "--format", "json", "--scanner", "Ingenia/42",
                          "--today", info["today"]).output)
    assert objs[0]["status"] == "stale"          # MR: last QC 59 days before, limit 30
    objs = json.loads(run("trend", "--store", path, "--format", "json", "--scanner", "Ingenia/42",
                          "--today", DAY0 + dt.timedelta(days=25)).output)
    assert objs[0]["status"] != "stale"


def test_a_service_event_restarts_the_baseline(tmp_path):
    plain, restarted = tmp_path / "a.db", tmp_path / "b.db"
    build(plain)
    build(restarted, event_day=40)
    args = ("--format", "json", "--metric", "water_hu", "--scanner", "Revolution/SN1", "--today", "2026-08-20")
    a = [o for o in json.loads(run("trend", "--store", plain, *args).output) if "STANDARD" in o["protocol"]][0]
    b = [o for o in json.loads(run("trend", "--store", restarted, *args).output) if "STANDARD" in o["protocol"]][0]
    assert a["baseline"]["from"] == DAY0.isoformat() and a["events"] == []
    assert b["events"] == [(DAY0 + dt.timedelta(days=40)).isoformat()]
    assert b["baseline"]["from"] >= (DAY0 + dt.timedelta(days=40)).isoformat()
    # the new baseline sits on the drifted level, far above the first one
    assert b["baseline"]["mean"] > a["baseline"]["mean"] + 3


def test_event_commands(store):
    path, _ = store
    res = run("event", "add", "--store", path, "--scanner", "Revolution/SN1", "--kind", "calibration",
              "--date", "2026-07-01", "--note", "air cal <done>")
    assert res.exit_code == 0 and "recorded" in res.output
    res = run("event", "add", "--store", path, "--scanner", "Revolution/SN9", "--kind", "pm", "--date", "2026-07-01")
    assert res.exit_code == 1 and "no scanner 'Revolution/SN9'" in res.output and "Traceback" not in res.output
    assert run("event", "add", "--store", path, "--scanner", "Revolution/SN1", "--kind", "repair",
               "--date", "2026-07-01").exit_code == 2
    assert run("event", "add", "--store", path, "--scanner", "Revolution/SN1", "--kind", "pm",
               "--date", "01/07/2026").exit_code == 2
    assert run("event", "add", "--store", path.parent / "missing.db", "--scanner", "Revolution/SN1",
               "--kind", "pm", "--date", "2026-07-01").exit_code == 2
    assert not (path.parent / "missing.db").exists()
    res = run("event", "list", "--store", path)
    assert res.exit_code == 0 and "2026-07-01  Revolution/SN1  calibration  air cal <done>" in res.output
    res = run("event", "list", "--store", path, "--format", "json")
    assert json.loads(res.output) == [{"scanner": "Revolution/SN1", "kind": "calibration", "date": "2026-07-01",
                                       "note": "air cal <done>"}]
    with Store(path) as st:
        assert st.counts()["events"] == 1


def test_report_command_writes_one_file(store, tmp_path):
    path, info = store
    out = tmp_path / "r" / "report.html"
    assert run("report", "--store", path, "--output", out).exit_code == 1      # folder missing: clear error
    out.parent.mkdir()
    res = run("report", "--store", path, "--output", out, "--today", info["today"])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert page.count('<svg class="chart"') == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]     # no temp file left behind


def test_missing_store_and_empty_store(tmp_path):
    res = run("trend", "--store", tmp_path / "none.db")
    assert res.exit_code == 2 and "does not exist" in res.output
    Store(tmp_path / "empty.db").close()
    assert json.loads(run("trend", "--store", tmp_path / "empty.db", "--format", "json").output) == []
    assert "no trend series" in run("trend", "--store", tmp_path / "empty.db").output
    (tmp_path / "junk.db").write_bytes(b"not a database" * 200)
    res = run("trend", "--store", tmp_path / "junk.db")
    assert res.exit_code == 1 and "not an iqa trend store" in res.output and "Traceback" not in res.output
