"""iqa.drift: each statistic against hand-computed values, and the status logic.

Hand values are written out in the comments; σ = MR̄/1.128 (Montgomery 2019 eq. 6.33).
"""
import dataclasses
import json
import math

import numpy as np
import pytest

from iqa import drift
from iqa.criteria import builtin_tables

D0 = np.datetime64("2026-01-01")
SIGMA_01 = 1.0 / 1.128          # σ of the alternating 0, 1 baseline: every moving range is 1


def days(n, start=0):
    return D0 + np.arange(start, start + n)


def alternating(n=20):
    return np.tile([0.0, 1.0], n // 2)


def test_params_file_matches_dataclass_and_is_not_a_criteria_table():
    assert drift.load_params() == drift.SpcParams()
    names = [t.path for t in builtin_tables()]
    assert names and not any(n.endswith("spc.toml") for n in names)


def test_site_params_file(tmp_path):
    f = tmp_path / "spc.toml"
    f.write_text('baseline_n = 30\newma_lambda = 0.1\n[direction]\nup = ["x"]\n')
    p = drift.load_params(f)
    assert (p.baseline_n, p.ewma_lambda, p.cusum_h) == (30, 0.1, 5.0)
    f.write_text("baseline_m = 30\n")
    with pytest.raises(drift.CriteriaError, match="unknown SPC parameter.*baseline_m"):
        drift.load_params(f)
    f.write_text("ewma_lambda = 1.5\n")
    with pytest.raises(drift.CriteriaError, match="ewma_lambda"):
        drift.load_params(f)


@pytest.mark.parametrize("metric,side", [
    ("noise_hu", "up"), ("uniformity_hu", "up"), ("snr", "down"), ("snr_subtraction", "down"),
    ("mtf50_lpcm", "down"), ("piu_percent", "down"), ("lcd_spokes", "down"), ("water_hu", "both"),
    ("hu_bone", "both"), ("length_s1_h_mm", "both"), ("slice_thickness_mm", "both"), ("nobody", "both"),
])
def test_metric_direction(metric, side):
    assert drift.metric_direction(metric) == side


def test_baseline_mean_and_sigma_by_hand():
    # 1 3 2 5 4: mean 3; moving ranges 2 1 3 1 -> MR̄ 1.75; σ = 1.75/1.128
    mean, sd, mr, keep = drift.baseline_estimate(np.array([1.0, 3.0, 2.0, 5.0, 4.0]))
    assert (mean, mr) == (3.0, 1.75)
    assert sd == pytest.approx(1.75 / 1.128, rel=1e-15)
    assert keep.all()
    r = drift.evaluate(days(5), [1, 3, 2, 5, 4], baseline_n=5)
    assert r.baseline.to_dict() == {"n": 5, "mean": 3.0, "sd": pytest.approx(1.75 / 1.128, rel=1e-15),
                                    "from": "2026-01-01", "to": "2026-01-05"}
    assert r.status == "ok"


def test_baseline_outlier_removal_iterates():
    # 0 1 0 1 ... with one gross outlier: removed, then σ from the 19 left (moving range across the gap)
    x = alternating()
    x[7] = 40.0
    r = drift.evaluate(days(20), x)
    kept = np.delete(x, 7)
    assert r.baseline.n == 19
    assert r.baseline.mean == pytest.approx(kept.mean(), rel=1e-15)
    assert r.baseline.sd == pytest.approx(np.abs(np.diff(kept)).mean() / 1.128, rel=1e-15)
    assert r.baseline.removed == ("2026-01-08",)
    assert any("outlier" in w and "2026-01-08" in w for w in r.warnings)
    # a second, smaller outlier is only exposed once the first is gone (iterative removal)
    x[12] = 4.0
    mean, sd, _, keep = drift.baseline_estimate(x)
    assert not keep[7] and not keep[12] and keep.sum() == 18


def test_ewma_cusum_and_limits_by_hand():
    # baseline 0 1 0 1 ...: x̄ 0.5, σ 1/1.128; then z = 2, 2, -1
    # EWMA(λ 0.2): 0.4, 0.72, 0.376;  C+ (k 0.5): 1.5, 3.0, 1.5;  C-: 0, 0, 0.5
    # exact limit i=1 with the 1/m term: 2.86·sqrt(0.2/1.8·(1 − 0.8²) + 1/20) = 2.86·0.3
    z = np.array([2.0, 2.0, -1.0])
    x = np.r_[alternating(), 0.5 + z * SIGMA_01]
    r = drift.evaluate(days(23), x)
    c = r.chart
    np.testing.assert_allclose(c.ewma, [0.4, 0.72, 0.376], rtol=1e-12)
    np.testing.assert_allclose(c.cusum_plus, [1.5, 3.0, 1.5], rtol=1e-12)
    np.testing.assert_allclose(c.cusum_minus, [0.0, 0.0, 0.5], atol=1e-12)
    assert c.ewma_limit[0] == pytest.approx(2.86 * 0.3, rel=1e-12)
    asym = dataclasses.replace(drift.load_params(), ewma_limits="asymptotic", ewma_baseline_variance=False)
    r2 = drift.evaluate(days(23), x, params=asym)
    np.testing.assert_allclose(r2.chart.ewma_limit, 2.86 * math.sqrt(0.2 / 1.8), rtol=1e-12)
    assert c.shewhart == pytest.approx((0.5 - 2.66, 0.5 + 2.66), rel=1e-12)   # x̄ ± 2.66·MR̄, MR̄ = 1


def test_western_electric_two_of_three_beyond_two_sigma_is_watch():
    # z = 2.5, 0, 2.5: EWMA 0.5, 0.4, 0.82 (limit 1.04), C+ 2, 1.5, 3.5 (< 5), Shewhart 3σ not reached
    x = np.r_[alternating(), 0.5 + np.array([2.5, 0.0, 2.5]) * SIGMA_01]
    r = drift.evaluate(days(23), x)
    assert r.status == "watch"
    assert [a.rule for a in r.alarms] == ["we2"] and r.alarms[0].date == "2026-01-23"


def test_cusum_alarm_once_per_episode_without_reset():
    # a persistent +2σ shift: C+ = 1.5 i, above h = 5 from the 4th result on and stays: one alarm
    x = np.r_[alternating(), np.full(15, 0.5 + 2 * SIGMA_01)]
    r = drift.evaluate(days(35), x)
    cusum = [a for a in r.alarms if a.rule == "cusum"]
    assert [a.date for a in cusum] == ["2026-01-24"]
    assert "C+ 6.00 > h 5" in cusum[0].detail
    assert r.status == "alarm"


def test_direction_only_the_side_that_matters():
    x = np.r_[alternating(), np.full(10, 0.5 - 3 * SIGMA_01)]      # a drop of 3σ
    assert drift.evaluate(days(30), x, direction="up").status == "ok"
    assert drift.evaluate(days(30), x, direction="down").status == "alarm"
    assert drift.evaluate(days(30), x, direction="both").status == "alarm"
    assert drift.evaluate(days(30), x, direction="up").alarms == ()


def test_restart_at_event_starts_a_new_baseline():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0, 1, 40), rng.normal(6, 1, 40)]          # recalibrated to a new level on day 40
    before = drift.evaluate(days(80), x)
    assert before.status == "alarm"
    after = drift.evaluate(days(80), x, restarts=[D0 + 40])
    assert after.n == 40 and after.status == "ok"
    assert after.baseline.start == "2026-02-10" and after.baseline.mean == pytest.approx(x[40:60].mean())
    short = drift.evaluate(days(80), x, restarts=["2026-01-05", str(D0 + 70)])   # latest event wins
    assert short.n == 10 and short.status == "insufficient" and short.baseline is None


def test_insufficient_baseline_but_tolerance_still_judged():
    r = drift.evaluate(days(12), np.zeros(12), tolerance=(-1, 1))
    assert r.status == "insufficient" and r.baseline is None
    assert any("needs 20 results" in w for w in r.warnings)
    r = drift.evaluate(days(12), np.r_[np.zeros(11), 2.0], tolerance=(-1, 1))
    assert r.status == "out_of_tolerance"
    assert r.alarms[0].to_dict() == {"date": "2026-01-12", "rule": "tolerance",
                                     "detail": "2 above tolerance limit 1"}
    empty = drift.evaluate([], [])
    assert empty.status == "insufficient" and empty.n == 0 and empty.to_dict()["last"] is None


def test_unstable_baseline_is_insufficient():
    # 8 zeros and 12 values at ±10: with outlier_k 0.5 the ±10 go (|x| > 0.5·10.7), 8 of 20 kept < 10
    x = np.r_[np.zeros(8), np.tile([10.0, -10.0], 6), np.zeros(5)]
    r = drift.evaluate(days(25), x, params=dataclasses.replace(drift.load_params(), outlier_k=0.5))
    assert r.status == "insufficient" and r.baseline.n == 8
    assert any("only 8 of 20" in w for w in r.warnings)


def test_staleness():
    x = np.tile([0.0, 1.0], 15)
    assert drift.evaluate(days(30), x, today="2026-02-13", stale_after_days=14).status == "ok"
    r = drift.evaluate(days(30), x, today="2026-02-14", stale_after_days=14)
    assert r.status == "stale" and "no result for 15 days" in r.warnings[-1]
    bad = np.r_[x[:-1], 99.0]
    assert drift.evaluate(days(30), bad, tolerance=(-5, 5), today="2026-03-30",
                          stale_after_days=30).status == "stale"                 # stale wins
    assert drift.load_params().stale_days("CT") == 14 and drift.load_params().stale_days("mr") == 30


def test_status_precedence_out_of_tolerance_over_alarm():
    x = np.r_[alternating(), np.full(10, 0.5 + 3 * SIGMA_01)]
    assert drift.evaluate(days(30), x).status == "alarm"
    assert drift.evaluate(days(30), x, tolerance=(-2, 2)).status == "out_of_tolerance"
    assert drift.evaluate(days(30), x, action=(-2, 2)).status == "out_of_tolerance"


def test_forecast_on_a_known_line():
    # y = 0.1·t exactly, limit 4: last t = 29 (y 2.9), breach when 0.1 t > 4 -> 11 days later
    t = np.arange(30)
    r = drift.evaluate(days(30), 0.1 * t, tolerance=(-4, 4))
    f = r.forecast
    assert f.slope_per_day == pytest.approx(0.1, rel=1e-12) and f.limit == 4.0
    assert f.breach_date == str(D0 + 29 + 11)
    assert f.interval == (f.breach_date, f.breach_date)            # no scatter: Sen's interval is the slope
    assert r.to_dict()["forecast"]["interval"] == [f.breach_date, f.breach_date]
    # falling towards the lower limit, and none for the side that does not matter
    assert drift.evaluate(days(30), -0.1 * t, tolerance=(-4, 4)).forecast.breach_date == str(D0 + 40)
    assert drift.evaluate(days(30), -0.1 * t, tolerance=(-4, 4), direction="up").forecast is None
    assert drift.evaluate(days(30), 0.1 * t).forecast is None                    # no limit to breach


def test_forecast_none_when_slope_not_significant():
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 1, 40)
    r = drift.evaluate(days(40), noise, tolerance=(-4, 4))
    assert r.forecast is None
    from scipy.stats import theilslopes
    res = theilslopes(noise[-20:], np.arange(20.0))
    assert res.low_slope < 0 < res.high_slope                      # scipy agrees: CI contains 0


def test_forecast_interval_from_slope_ci():
    rng = np.random.default_rng(4)
    t = np.arange(40.0)
    y = 0.2 * t + rng.normal(0, 0.5, 40)
    f = drift.evaluate(days(40), y, tolerance=(-20, 20)).forecast
    from scipy.stats import theilslopes
    res = theilslopes(y[-20:], t[-20:] - 39.0)
    assert f.slope_per_day == pytest.approx(res.slope, rel=1e-12)
    assert f.slope_interval == pytest.approx((res.low_slope, res.high_slope), rel=1e-12)
    t_med, y_med = np.median(t[-20:] - 39.0), np.median(y[-20:])
    expect = [str(D0 + 39 + math.ceil(t_med + (20 - y_med) / s)) for s in (res.high_slope, res.low_slope)]
    assert list(f.interval) == expect
    assert f.interval[0] <= f.breach_date <= f.interval[1]


def test_western_electric_eight_in_a_row_is_watch():
    x = np.r_[alternating(), np.full(8, 0.5 + 0.5 * SIGMA_01)]
    r = drift.evaluate(days(28), x)
    assert r.status == "watch" and [a.rule for a in r.alarms] == ["we4"]
    assert r.alarms[0].date == str(D0 + 27)


def test_shewhart_point_is_watch_unless_configured():
    x = np.r_[alternating(), 0.5 + 3.5 * SIGMA_01]
    assert drift.evaluate(days(21), x).status == "watch"
    strict = dataclasses.replace(drift.load_params(), shewhart_alarm=True)
    assert drift.evaluate(days(21), x, params=strict).status == "alarm"


def test_input_handling_and_dict_contract():
    x = np.r_[alternating(), 0.4, np.nan, 0.6]
    dates = [str(d) for d in days(23)]
    shuffled = np.random.default_rng(0).permutation(23)
    r = drift.evaluate([dates[i] + "T08:00:00" for i in shuffled], x[shuffled])
    assert r.n == 22 and r.last == ("2026-01-23", 0.6)
    assert "1 non-finite value(s) ignored" in r.warnings
    d = r.to_dict()
    assert set(d) == {"n", "baseline", "last", "status", "alarms", "forecast", "warnings"}
    json.dumps(d, allow_nan=False)
    with pytest.raises(ValueError, match="direction"):
        drift.evaluate(days(3), [1, 2, 3], direction="sideways")
    with pytest.raises(ValueError, match="3 dates but 2 values"):
        drift.evaluate(days(3), [1, 2])


def test_episodes_end_only_back_at_target():
    # z = 6, 0, 1, -6 after an alternating baseline
    # C+: 5.5 (> h: alarm), 5.0, 5.5 (still > 0: same episode), 0 (episode over); C-: 0, 0, 0, 5.5 (new alarm)
    # EWMA: 1.2 (> 0.858), 0.96 (< limit 0.972 but > 0: same episode), 0.968, -0.4256 (back across 0)
    x = np.r_[alternating(), 0.5 + np.array([6.0, 0.0, 1.0, -6.0]) * SIGMA_01]
    r = drift.evaluate(days(24), x)
    np.testing.assert_allclose(r.chart.cusum_plus, [5.5, 5.0, 5.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(r.chart.ewma, [1.2, 0.96, 0.968, -0.4256], rtol=1e-12)
    got = [(a.date[-2:], a.rule) for a in r.alarms if a.rule in ("ewma", "cusum")]
    assert got == [("21", "ewma"), ("21", "cusum"), ("24", "cusum")]
    assert [a.detail for a in r.alarms if a.rule == "cusum"][-1] == "CUSUM C- 5.50 > h 5 (k 0.5)"
    np.testing.assert_array_equal(r.chart.level, [2, 2, 2, 2])
    assert r.status == "alarm"


def test_evaluate_batch_equals_evaluate_per_series():
    rng = np.random.default_rng(11)
    lens = [0, 5, 25, 40, 60, 33]
    series = []
    for k, n in enumerate(lens):
        d = D0 + np.sort(rng.choice(90, n, replace=False))
        v = rng.normal(0, 1, n) + np.where(np.arange(n) > 25, 0.3 * (np.arange(n) - 25), 0) * (k % 2)
        if n > 30:
            v[3] = np.nan
            perm = rng.permutation(n)                       # unsorted input
            d, v = d[perm], v[perm]
        series.append((d, v))
    directions = ["both", "up", "down", "both", "up", "both"]
    tols = [None, (-3, 3), (None, 2.5), (-4, 4), None, (-1, 1)]
    restarts = [None, None, None, D0 + 20, None, np.datetime64("NaT")]
    stale = [14, np.nan, np.nan, 14, 30, 14]
    offsets = np.r_[0, np.cumsum(lens)]
    batch = drift.evaluate_batch(
        offsets, np.concatenate([s[0] for s in series]), np.concatenate([s[1] for s in series]),
        directions=directions, tolerances=[(np.nan, np.nan) if t is None else t for t in tols],
        restarts=restarts, today="2026-04-15", stale_after_days=stale)
    for (d, v), dr, tl, rs, st, got in zip(series, directions, tols, restarts, stale, batch):
        want = drift.evaluate(d, v, direction=dr, tolerance=tl,
                              restarts=() if rs is None or np.isnat(rs) else [rs], today="2026-04-15",
                              stale_after_days=None if np.isnan(st) else st)
        assert got == want
        assert got.to_dict() == want.to_dict()
    assert {s.status for s in batch} >= {"insufficient", "stale"}
