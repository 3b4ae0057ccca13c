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
