"""``iqa demo`` end to end on a small archive: archive -> batch -> trend -> report."""
from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from iqa.cli.main import cli

pytestmark = pytest.mark.xdist_group("batch")


def test_demo_writes_store_and_report(tmp_path):
    res = CliRunner().invoke(cli, ["demo", "--output-dir", str(tmp_path), "--days", "24", "--scanners", "1",
                                   "--workers", "1"])
    assert res.exit_code == 0, res.output
    con = sqlite3.connect(tmp_path / "iqa.sqlite")
    assert con.execute("SELECT COUNT(*) FROM series").fetchone()[0] == 24     # one CT water series a day
    html = (tmp_path / "report.html").read_text()
    assert "Sim-CT/SN1000" in html and "<svg" in html
    assert f"report: {(tmp_path / 'report.html').resolve()}" in res.output
    assert "24 analysed" in res.output
