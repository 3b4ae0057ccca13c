"""Drift-detection study behind tests/drift/test_acceptance.py (not a test; run by hand).

    .venv/bin/python tests/drift/drift_study.py [N_HISTORIES]
    .venv/bin/python tests/drift/drift_study.py --timing [N_SERIES]

Prints detection, lead times and false-alarm rates of iqa.drift on simulated histories for the
default SPC parameters and the variants examined (known parameters, limits, baseline length),
and the water-HU scenario over many seeds.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_acceptance import SEED, measure, water_outcome  # noqa: E402

from iqa import drift  # noqa: E402
from iqa.fixtures.archive import simulate_histories  # noqa: E402


def main(n: int) -> None:
    h = simulate_histories(n, seed=SEED)
    p = drift.load_params()
    rep = dataclasses.replace
    variants = [
        ("defaults", p),
        ("L 3.2, h 6", rep(p, ewma_L=3.2, cusum_h=6.0)),
        ("asymptotic EWMA limits", rep(p, ewma_limits="asymptotic")),
        ("no 1/m EWMA term", rep(p, ewma_baseline_variance=False)),
        ("Shewhart point = alarm", rep(p, shewhart_alarm=True)),
        ("L 3.5, h 7", rep(p, ewma_L=3.5, cusum_h=7.0)),
        ("baseline_n 50 (onset >= day 50 only)", rep(p, baseline_n=50)),
    ]
    print(f"{n} histories, seed {SEED}: {int((h.kind == 'drift').sum())} drifts, "
          f"{int((h.kind == 'step').sum())} steps, {int((h.kind == 'stable').sum())} stable")
    for name, params in variants:
        hh = h
        if params.baseline_n != 20:
            keep = (h.onset < 0) | (h.onset >= params.baseline_n)
            hh = dataclasses.replace(h, **{f.name: getattr(h, f.name)[keep] for f in dataclasses.fields(h)
                                           if isinstance(getattr(h, f.name), np.ndarray)})
        t = time.perf_counter()
        m = measure(hh, params)
        m.pop("steps")
        print(f"\n{name}  ({time.perf_counter() - t:.1f} s)\n" + json.dumps(m, indent=1))
    # oracle: the true mean 0 and σ 1 as the baseline (a 2000-result in-control prefix)
    pre = np.random.default_rng(1).standard_normal((h.values.shape[0], 2000))
    oracle = dataclasses.replace(h, values=np.concatenate([pre, h.values[:, 20:]], axis=1),
                                 onset=np.where(h.onset >= 0, h.onset + 1980, -1),
                                 breach=np.where(h.breach >= 0, h.breach + 1980, -1))
    m = measure(oracle, rep(p, baseline_n=2000))
    m.pop("steps")
    print("\nknown parameters (2000-result baseline)\n" + json.dumps(m, indent=1))
    out = [water_outcome(s) for s in range(500)]
    ok5 = np.mean([a is not None and b - a >= 5 for b, a, _ in out])
    fa = np.mean([s for _, _, s in out])
    leads = [b - a for b, a, _ in out if a is not None]
    print(f"\nwater HU +0.25 HU/day after 30 stable days, 500 seeds: alarm >= 5 d before breach {ok5:.1%}, "
          f"alarm in the stable 30 d {fa:.1%}, median lead {np.median(leads):.0f} d")


def timing(n: int) -> None:
    """CPU and wall time of evaluate_batch over ``n`` series of 20-40 daily results (and of evaluate)."""
    rng = np.random.default_rng(0)
    lens = rng.integers(20, 41, n)
    offsets = np.r_[0, np.cumsum(lens)]
    dates = np.datetime64("2026-01-01") + np.concatenate(
        [np.sort(rng.choice(60, k, replace=False)) for k in lens])
    values = rng.normal(0.0, 1.0, offsets[-1])
    tol = np.tile([-5.0, 5.0], (n, 1))
    drift.evaluate_batch(offsets[:3], dates[:offsets[2]], values[:offsets[2]], tolerances=tol[:2])  # compile
    for _ in range(3):
        c, w = time.process_time(), time.perf_counter()
        drift.evaluate_batch(offsets, dates, values, tolerances=tol, actions=1.4 * tol,
                             today="2026-03-05", stale_after_days=14)
        print(f"evaluate_batch: {n} series, {offsets[-1]} results: cpu {time.process_time() - c:.2f} s, "
              f"wall {time.perf_counter() - w:.2f} s")
    k = min(n, 5000)
    c = time.process_time()
    for i in range(k):
        drift.evaluate(dates[offsets[i]:offsets[i + 1]], values[offsets[i]:offsets[i + 1]],
                       tolerance=(-5, 5), action=(-7, 7), today="2026-03-05", stale_after_days=14)
    print(f"evaluate (one call per series): {1e6 * (time.process_time() - c) / k:.0f} us cpu per series")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--timing":
        timing(int(sys.argv[2]) if len(sys.argv) > 2 else 50_000)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
