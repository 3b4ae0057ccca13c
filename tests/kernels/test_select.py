"""kernels.select: order statistics equal the reference; percentile and median equal NumPy's bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from iqa.kernels import _reference_flood as ref
from iqa.kernels.select import median, order_statistics, percentile


def _samples():
    rng = np.random.default_rng(9)
    yield rng.normal(100.0, 20.0, 1000)
    yield rng.normal(0.0, 1.0, 4097)
    yield rng.integers(0, 5, 777).astype(np.float64)          # many ties
    yield np.concatenate([rng.normal(0, 1, 500), [1e300, -1e300]])   # a huge range: one bucket wide
    yield rng.exponential(1.0, 3000) ** 6                      # heavily skewed
    yield np.full(50, 3.25)
    yield np.array([2.0])
    yield np.array([5.0, -1.0])
    yield np.array([0.0, -0.0, 1.0, np.inf])
    yield np.array([-np.inf, 1.0, 2.0, 3.0, np.inf])
    yield rng.normal(0, 1, (33, 20))


@pytest.mark.parametrize("k", range(11))
def test_order_statistics_agree_with_reference(k):
    v = list(_samples())[k]
    n = v.size
    ranks = sorted({0, n - 1, n // 2, (n - 1) // 2, n // 3, min(n - 1, 7)})
    np.testing.assert_array_equal(order_statistics(v, ranks), ref.order_statistics_ref(v, ranks))
    np.testing.assert_array_equal(order_statistics(v, ranks[::-1]), ref.order_statistics_ref(v, ranks[::-1]))


@pytest.mark.parametrize("k", range(11))
@pytest.mark.parametrize("q", [[99.0, 5.0], [50.0], [0.0, 100.0], [12.5, 87.5, 33.3]])
def test_percentile_and_median_are_numpys(k, q):
    v = list(_samples())[k]
    with np.errstate(invalid="ignore"):
        want = [float(x) for x in np.percentile(v, q)]
        wm = float(np.median(v))
    np.testing.assert_array_equal(percentile(v, q), want)
    np.testing.assert_array_equal(median(v), wm)


def test_nan_makes_every_statistic_nan():
    v = np.array([1.0, np.nan, 3.0, 2.0])
    assert np.isnan(order_statistics(v, [0, 3])).all()
    assert np.isnan(percentile(v, [99.0, 5.0])).all() and np.isnan(median(v))


def test_rank_checks():
    with pytest.raises(ValueError):
        order_statistics(np.arange(3.0), [3])
    with pytest.raises(ValueError):
        order_statistics(np.zeros(0), [0])
