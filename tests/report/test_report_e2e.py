"""DICOM to report end to end: a synthetic water phantom whose StationName and kernel carry markup,
``iqa analyze --store`` then ``iqa trend`` and ``iqa report``; no patient data in the store, nothing
executable in the page."""
from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from iqa.cli.main import cli

pytest.importorskip("iqa.phantoms.water", reason="water phantom pipeline not available")
pytest.importorskip("iqa.drift", reason="iqa.drift not available")

STATION = "<script>alert(1)</script>\"'"
KERNEL = "<i>B30f'\""


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.mark.filterwarnings("ignore:The value length")      # the markup is longer than VR SH allows
def test_analyze_store_trend_report(fixture_dir, tmp_path):
    folder = fixture_dir("ct-water", matrix=128, n_slices=3, station=STATION, kernel=KERNEL,
                         description="<b>QA</b> & 'daily'")
    db = tmp_path / "qa.db"
    runner = CliRunner()
    res = runner.invoke(cli, ["analyze", str(folder), "--phantom", "water", "--store", str(db), "--format", "json"])
    assert res.exit_code == 0, res.output
    uid = json.loads(res.stdout)[0]["series_uid"]
    # the fixture's Patient module holds QA^PHANTOM / PHANTOM01: none of it may reach the store
    blob = b"".join(p.read_bytes() for p in tmp_path.glob("qa.db*"))
    assert uid.encode() in blob and STATION.encode() in blob
    for secret in (b"QA^PHANTOM", b"PHANTOM01", b"19700101"):
        assert secret not in blob, secret
    # twice: idempotent
    assert runner.invoke(cli, ["analyze", str(folder), "--phantom", "water", "--store", str(db)]).exit_code == 0
    res = runner.invoke(cli, ["trend", "--store", str(db), "--format", "json", "--today", "2026-09-02"])
    objs = json.loads(res.stdout)
    assert res.exit_code == 0 and objs and {o["n"] for o in objs} == {1}
    assert all(o["status"] == "insufficient" and f"kernel={KERNEL}" in o["protocol"] for o in objs)
    assert {o["metric"] for o in objs} >= {"water_hu", "noise_hu"}
    out = tmp_path / "report.html"
    res = runner.invoke(cli, ["report", "--store", str(db), "--output", str(out), "--today", "2026-09-02"])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    p = Tags()
    p.feed(page)
    assert [t for t, _ in p.tags if t in ("script", "i")] == []          # (the legend uses <b> itself)
    assert not [a for _, attrs in p.tags for a in attrs if a.lower().startswith("on")]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;" in page and "&lt;i&gt;B30f&#x27;&quot;" in page
    assert sum(1 for t, a in p.tags if t == "svg" and a.get("class") == "chart") == len(objs)
