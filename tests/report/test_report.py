"""The HTML report: self-contained, escaped, charts with the elements they promise."""
from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from iqa.report import HEIGHT, LEFT, RIGHT, TOP, BOTTOM, WIDTH, chart_svg, render

HOSTILE = "<script>alert(1)</script>\"' onload=alert(2) <img src=x onerror=alert(3)>"


class Page(HTMLParser):
    """Every start tag with its attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def trend_dict(**over):
    d = {"status": "alarm", "n": 60,
         "baseline": {"n": 20, "mean": 0.0, "sd": 0.5, "from": "2026-09-01", "to": "2026-09-20"},
         "last": {"date": "2026-10-30", "value": 3.0},
         "alarms": [{"date": "2026-10-20", "rule": "ewma", "detail": "EWMA above limit"},
                    {"date": "2026-10-21", "rule": "we2", "detail": "2 of 3 beyond 2 sd"}],
         "forecast": {"breach_date": "2026-11-06", "limit": 4.0, "slope_per_day": 0.15,
                      "interval": ["2026-11-03", "2026-11-12"]},
         "limits": {"tolerance": [-4.0, 4.0], "action": [-7.0, 7.0]}, "events": ["2026-09-01"]}
    d.update(over)
    return d


def series60():
    days = np.arange(dt.date(2026, 9, 1).toordinal(), dt.date(2026, 9, 1).toordinal() + 60)
    values = np.linspace(-0.5, 3.0, 60)
    return days, values


def attr_float(svg: str, cls: str, name: str) -> list[float]:
    return [float(m) for m in re.findall(rf'class="{cls}"[^>]*?\b{name}="([-0-9.]+)"', svg)]


def test_chart_geometry_matches_the_data():
    days, values = series60()
    svg = chart_svg(trend_dict(), days, values, title="water_hu")
    tags = parse(svg).tags
    classes = [a.get("class") for _, a in tags]
    for cls in ("tolerance", "action", "baseline", "control", "data", "points", "forecast", "forecast-interval",
                "event", "alarm"):
        assert cls in classes, cls
    assert classes.count("alarm") == 2 and classes.count("control") == 2 and classes.count("action") == 2
    # y axis: the tolerance band's top and bottom are +4 and -4 on the same linear scale as the baseline (0)
    band = next(a for t, a in tags if a.get("class") == "tolerance")
    y_top, h = float(band["y"]), float(band["height"])
    y_mean = attr_float(svg, "baseline", "y1")[0]
    assert y_mean == pytest.approx(y_top + h / 2, abs=0.15)
    ucl, lcl = attr_float(svg, "control", "y1")
    assert (y_mean - ucl) == pytest.approx((3 * 0.5 / 4) * (h / 2), abs=0.15)      # 3 sd = 1.5 of 4 HU
    assert lcl - y_mean == pytest.approx(y_mean - ucl, abs=0.15)
    # x axis: the forecast reaches the breach date's x at the tolerance's y
    pts = [tuple(map(float, p.split(","))) for p in next(a for t, a in tags if a.get("class") == "data")["points"].split()]
    assert len(pts) == 60
    x_per_day = (pts[-1][0] - pts[0][0]) / 59
    fx2 = attr_float(svg, "forecast", "x2")[0]
    fy2 = attr_float(svg, "forecast", "y2")[0]
    assert fx2 == pytest.approx(pts[-1][0] + x_per_day * 7, abs=0.2)              # 10-30 -> 11-06
    assert fx2 == pytest.approx(WIDTH - RIGHT)                                      # the axis ends at the breach
    assert fy2 == pytest.approx(y_top, abs=0.2)
    assert LEFT <= min(p[0] for p in pts) and max(p[0] for p in pts) <= WIDTH - RIGHT + 0.01
    # alarms ring the points of their dates (10-20 is day 49)
    cx = attr_float(svg, "alarm", "cx")
    assert cx[0] == pytest.approx(pts[49][0], abs=0.05) and cx[1] == pytest.approx(pts[50][0], abs=0.05)
    rings = [a["stroke"] for t, a in tags if a.get("class") == "alarm"]
    assert rings == ["#e03131", "#e0a800"]                      # ewma an alarm (red), we2 a watch (amber)
    assert TOP <= min(p[1] for p in pts) and max(p[1] for p in pts) <= HEIGHT - BOTTOM


def test_chart_without_limits_baseline_or_forecast_still_draws():
    days, values = series60()
    svg = chart_svg({"status": "insufficient", "n": 1}, days[:1], values[:1], title="x")
    classes = [a.get("class") for _, a in parse(svg).tags]
    assert "points" in classes and "tolerance" not in classes and "forecast" not in classes
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


class FakeTrend:
    def __init__(self, scanner, metric, protocol, d, days, values, unit="HU", phantom="water"):
        self.scanner, self.metric, self.protocol, self.phantom, self.unit = scanner, metric, protocol, phantom, unit
        self.status, self.days, self.values, self._d = d, days, values, d

    def to_dict(self):
        return dict(self._d)


def hostile_page():
    days, values = series60()
    d = trend_dict(alarms=[{"date": "2026-10-20", "rule": HOSTILE, "detail": HOSTILE}],
                   warnings=[HOSTILE])
    trends = [FakeTrend(f"M/{HOSTILE}", "water_hu", f"kvp=120 kernel={HOSTILE}", d, days, values),
              FakeTrend("Ingenia/42", "snr", "coil=HEAD", trend_dict(status="ok", alarms=[], forecast=None),
                        days, values + 100, unit="")]
    scanners = [{"key": f"M/{HOSTILE}", "manufacturer": HOSTILE, "model": "M", "station": HOSTILE,
                 "serial": HOSTILE, "modality": "CT"},
                {"key": "Ingenia/42", "manufacturer": "Philips", "model": "Ingenia", "station": "MR1", "serial": "42",
                 "modality": "MR"}]
    return render(trends, scanners, today=dt.date(2026, 10, 30), store_path=f"/tmp/{HOSTILE}.db")


def test_every_dicom_string_is_escaped_and_nothing_can_run():
    page = hostile_page()
    p = parse(page)
    assert [t for t, _ in p.tags if t in ("script", "img", "iframe", "object", "embed", "link", "base")] == []
    for tag, attrs in p.tags:
        assert not [a for a in attrs if a.lower().startswith("on")], (tag, attrs)
        for v in attrs.values():
            assert "javascript:" not in (v or "").lower()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;" in page
    assert HOSTILE in "".join(p.text)                       # shown to the reader as text
    # the page forbids scripts and network even if something slipped through
    csp = next(a["content"] for t, a in p.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_page_is_self_contained_with_overview_and_one_chart_per_series():
    page = hostile_page()
    p = parse(page)
    urls = [v for _, a in p.tags for k, v in a.items() if k in ("src", "href") and v]
    assert all(u.startswith("#") for u in urls), urls                  # only in-page anchors
    assert re.findall(r"https?://[^\s\"'<>]+", page) == ["http://www.w3.org/2000/svg"] * 2   # xmlns only
    assert sum(1 for t, a in p.tags if t == "svg" and a.get("class") == "chart") == 2
    overview = page[page.index('class="overview"'):page.index("</table>")]
    assert "Ingenia/42" in overview and "alarm" in overview and "MR1" in overview
    ids = {a["id"] for _, a in p.tags if "id" in a}
    assert {u[1:] for u in urls} <= ids                                # every link lands


def _chromium() -> str | None:
    import shutil
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.external
def test_report_renders_in_headless_chromium(tmp_path):
    """A real browser loads the file offline, logs no error, and the charts are in its DOM and pixels."""
    import subprocess

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium not installed (Debian: apt-get install -y chromium)")
    page = tmp_path / "report.html"
    page.write_text(hostile_page(), encoding="utf-8")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--window-size=1100,1600"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90)
    assert dom.returncode == 0, dom.stderr[-2000:]
    p = parse(dom.stdout)
    assert sum(1 for t, a in p.tags if t == "svg" and a.get("class") == "chart") == 2
    assert sum(1 for t, a in p.tags if t == "circle" and a.get("class") == "alarm") == 1
    assert not [t for t, _ in p.tags if t == "script"]
    console = [ln for ln in dom.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln or "Refused" in ln]
    assert console == [], console
    shot = tmp_path / "shot.png"
    run = subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=90)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import matplotlib.image as mpimg
    img = mpimg.imread(shot)[..., :3]
    ink = (img.min(axis=2) < 0.9).mean()
    green_band = ((np.abs(img - np.array([0xE8, 0xF5, 0xE9]) / 255).max(axis=2)) < 0.02).mean()
    assert ink > 0.03 and green_band > 0.01, (ink, green_band)      # text, points and the tolerance band painted
