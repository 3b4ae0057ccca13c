"""phantoms._memo: per-volume sharing of localisation results between identify() and analyze()."""
from __future__ import annotations

import gc
from dataclasses import dataclass

import numpy as np
import pytest

from iqa.phantoms import _ct, _memo
from iqa.errors import LocalizationError


@dataclass(frozen=True)
class _Result:
    values: np.ndarray


def test_computed_once_per_volume_and_key():
    vol = np.zeros((3, 8, 8), np.float32)
    calls = []

    def compute(tag):
        calls.append(tag)
        return _Result(np.arange(3.0))

    a = _memo.memo(vol, ("k", 1), lambda: compute("a"))
    b = _memo.memo(vol, ("k", 1), lambda: compute("b"))
    c = _memo.memo(vol, ("k", 2), lambda: compute("c"))
    other = _memo.memo(vol.copy(), ("k", 1), lambda: compute("d"))
    assert calls == ["a", "c", "d"] and a is b and c is not a and other is not a
    with pytest.raises(ValueError):                   # shared results cannot be changed by a caller
        a.values[0] = 1.0


def test_entry_dropped_with_its_volume():
    vol = np.zeros((2, 4, 4))
    _memo.memo(vol, ("k",), lambda: 1)
    vid = id(vol)
    assert vid in _memo._MEMO
    del vol
    gc.collect()
    assert vid not in _memo._MEMO


def test_listed_errors_are_remembered_and_raised_again():
    vol = np.zeros((2, 4, 4), np.float32)
    calls = []

    def fail():
        calls.append(1)
        raise LocalizationError("no phantom on slice 1")

    for _ in range(3):
        with pytest.raises(LocalizationError, match="no phantom on slice 1"):
            _memo.memo(vol, ("e",), fail, errors=(LocalizationError,))
    assert calls == [1]
    # an error not listed is not remembered
    with pytest.raises(ZeroDivisionError):
        _memo.memo(vol, ("z",), lambda: calls.append(2) or 1 / 0)
    assert _memo.memo(vol, ("z",), lambda: calls.append(3) or 5) == 5 and calls == [1, 2, 3]


def test_view_memo_shares_a_slice_not_its_neighbours():
    vol = np.random.default_rng(0).normal(size=(4, 6, 6)).astype(np.float32)
    calls = []
    first = _memo.view_memo(vol[2], ("s",), lambda: calls.append(2) or float(vol[2].sum()))
    again = _memo.view_memo(vol[2], ("s",), lambda: calls.append(-1) or 0.0)
    other = _memo.view_memo(vol[3], ("s",), lambda: calls.append(3) or float(vol[3].sum()))
    assert calls == [2, 3] and first == again and other == pytest.approx(float(vol[3].sum()))


def test_find_body_errors_name_each_callers_slice():
    """The cached outline stage keeps failures; each caller's message names its own slice."""
    img = np.full((64, 64), -1000.0, np.float32)
    for where in ("a.dcm: slice 1", "b.dcm: slice 9"):
        with pytest.raises(Exception, match=where):
            _ct.find_body(img, spacing_mm=(1.0, 1.0), where=where)
