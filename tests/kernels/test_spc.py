"""kernels/spc.py agrees with its NumPy reference; the reference agrees with hand values and scipy."""
import numpy as np
import pytest

from iqa.kernels import _reference_spc as ref
from iqa.kernels import spc

Z95 = 1.959963984540054


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [0, 1, 2, 7, 60])
def test_ewma_cusum_matches_reference(seed, n):
    rng = np.random.default_rng(seed)
    z = rng.normal(0.3, 1.2, n)
    if n > 3:
        z[rng.integers(0, n, 2)] = np.nan
    for lam, k, start in [(0.2, 0.5, 0.0), (0.05, 0.25, 2.5), (1.0, 0.0, 0.0)]:
        got = spc.ewma_cusum(z, lam, k, start)
        want = ref.ewma_cusum_ref(z, lam, k, start)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_ewma_cusum_by_hand():
    # λ=0.5, k=0.5: z = 1, 3, -2 -> EWMA 0.5, 1.75, -0.125; C+ 0.5, 3.0, 0.5; C- 0, 0, 1.5
    e, cp, cm = spc.ewma_cusum(np.array([1.0, 3.0, -2.0]), 0.5, 0.5, 0.0)
    np.testing.assert_allclose(e, [0.5, 1.75, -0.125])
    np.testing.assert_allclose(cp, [0.5, 3.0, 0.5])
    np.testing.assert_allclose(cm, [0.0, 0.0, 1.5])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [2, 3, 10, 41])
def test_theil_sen_matches_reference_and_scipy(seed, n):
    from scipy import stats
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 3 * n, n)).astype(float)      # repeated days included
    y = np.round(0.1 * t + rng.normal(0, 1, n), 1)              # ties in y too
    got = spc.theil_sen(t, y, Z95)
    want = ref.theil_sen_ref(t, y, Z95)
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    if len(np.unique(t)) > 1:
        sp = stats.theilslopes(y, t, alpha=0.95)
        np.testing.assert_allclose(got, [sp.slope, sp.intercept, sp.low_slope, sp.high_slope], rtol=1e-12)


def test_theil_sen_exact_line_and_degenerate():
    t = np.arange(10.0)
    slope, intercept, lo, hi = spc.theil_sen(t, 2.5 * t - 1.0, Z95)
    assert (slope, intercept, lo, hi) == (2.5, -1.0, 2.5, 2.5)
    assert np.isnan(spc.theil_sen(np.ones(4), np.arange(4.0), Z95)).all()
    assert np.isnan(spc.theil_sen(np.ones(1), np.ones(1), Z95)).all()


def _scan_args(x, t, *, bn=20, up=True, down=True, exact=True, base_var=True, we=True, headstart=0.0,
               tol=(-np.inf, np.inf), act=(-np.inf, np.inf), shewhart_alarm=False):
    return (x, bn, 1.128, 3.0, 10, 10, 2.66, shewhart_alarm, 0.2, 2.86, exact, base_var, 0.5, 5.0, headstart, we, 5,
            up, down, tol[0], tol[1], act[0], act[1], 20, 8, t, Z95)


def _check_scan(x, t, **kw):
    got = spc.scan(*_scan_args(x, t, **kw))
    want = ref.scan_ref(*_scan_args(x, t, **kw))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-12, equal_nan=True)
    ev = got[1][np.lexsort((got[1][:, 1], got[1][:, 0]))] if got[1].size else got[1].reshape(-1, 2)
    np.testing.assert_array_equal(ev, want[1])
    np.testing.assert_array_equal(got[2], want[2])
    for g, w in zip(got[3:7], want[3:7]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got[7], want[7])


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [0, 1, 5, 19, 20, 21, 45, 120])
def test_scan_matches_reference(seed, n):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 2 * n + 1, n)).astype(float)
    drift = np.where(np.arange(n) > 30, 0.08 * (np.arange(n) - 30), 0.0) * (seed % 3 - 1)
    x = rng.normal(0, 1, n) + drift
    if n > 10 and seed % 2:
        x[rng.integers(0, min(n, 20), 2)] += 6.0          # baseline outliers
    for kw in [{}, {"up": True, "down": False}, {"up": False, "down": True},
               {"exact": False, "base_var": False, "headstart": 2.5, "shewhart_alarm": True},
               {"we": False, "tol": (-2.0, 2.5), "act": (-3.0, np.inf)}]:
        _check_scan(x, t, **kw)


def test_scan_edge_inputs():
    _check_scan(np.zeros(25), np.arange(25.0))                      # no variation: no charts
    _check_scan(np.r_[np.zeros(19), 50.0, np.ones(10)], np.arange(30.0))
    _check_scan(np.arange(30.0) % 2, np.zeros(30))                 # all on one day: no forecast
    x = np.r_[np.tile([0.0, 1.0], 10), np.full(10, 1e6)]            # huge values
    _check_scan(x, np.arange(30.0), tol=(-1.0, 2.0))


@pytest.mark.parametrize("seed", range(3))
def test_scan_batch_matches_reference(seed):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 60, 12)
    offsets = np.r_[0, np.cumsum(lens)]
    starts = offsets[:-1] + (rng.integers(0, 10, 12) * (rng.random(12) < 0.4)).clip(0, lens)
    x = rng.normal(0, 1, offsets[-1]) + np.repeat(rng.normal(0, 0.2, 12), lens) * np.arange(offsets[-1]) % 7
    t = np.concatenate([np.sort(rng.integers(0, 90, n)) for n in lens]).astype(float)
    up = rng.random(12) < 0.7
    down = ~up | (rng.random(12) < 0.5)
    lo = np.where(rng.random(12) < 0.5, -np.inf, -2.5)
    hi = np.where(rng.random(12) < 0.5, np.inf, 2.5)
    args = (offsets, starts, x, t, 20, 1.128, 3.0, 10, 10, 2.66, False, 0.2, 2.86, True, True, 0.5, 5.0,
            0.0, True, 5, up, down, lo, hi, lo - 1, hi + 1, 20, 8, Z95)
    got = spc.scan_batch(*args)
    want = ref.scan_batch_ref(*args)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-9, atol=1e-12, equal_nan=True)
    ev = got[1][np.lexsort((got[1][:, 2], got[1][:, 1], got[1][:, 0]))]
    np.testing.assert_array_equal(ev, want[1][np.lexsort((want[1][:, 2], want[1][:, 1], want[1][:, 0]))])
    np.testing.assert_array_equal(got[2], want[2])
    for g, w in zip(got[3:7], want[3:7]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got[7], want[7])


@pytest.mark.parametrize("seed", [0, 3])
def test_scan_matches_reference_on_a_long_drifting_history(seed):
    """Many alarm episodes of several rules: the event list must match the reference row for row
    (it was once emitted grouped by rule instead of by day)."""
    from scipy.stats import norm
    from iqa.kernels import _reference_spc as RS
    rng = np.random.default_rng(seed)
    n = 1000
    x = rng.normal(0, 1, n) + np.where(np.arange(n) > n // 2, 0.02 * (np.arange(n) - n // 2), 0)
    args = (x, 20, 1.128, 3.0, 10, 10, 2.66, False, 0.2, 2.86, True, True, 0.5, 5.0, 0.0, True, 5,
            True, True, -5.0, 5.0, -6.0, 6.0, 20, 8, np.arange(n, dtype=float), norm.ppf(0.975))
    for fast, slow in zip(spc.scan(*args), RS.scan_ref(*args)):
        np.testing.assert_allclose(np.asarray(fast, float), np.asarray(slow, float), rtol=1e-7, atol=1e-9)
