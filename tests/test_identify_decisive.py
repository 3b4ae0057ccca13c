"""iqa.analysis.identify: a decisive score ends the search; otherwise the best score wins."""
from __future__ import annotations

import sys
import types
from types import MappingProxyType

import pytest

from iqa import analysis
from iqa.errors import LocalizationError


class _Series:
    modality = "MR"
    where = "test-series"


def _registry(monkeypatch, scores: dict[str, float]) -> list[str]:
    called: list[str] = []
    entries = {}
    for name, score in scores.items():
        mod = types.ModuleType(f"_fake_phantom_{name}")
        mod.identify = (lambda s, name=name, score=score: called.append(name) or score)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        entries[name] = (mod.__name__, "MR")
    entries["ct-only"] = ("_fake_never_imported", "CT")
    monkeypatch.setattr(analysis, "PHANTOMS", MappingProxyType(entries))
    return called


def test_decisive_score_stops_the_search(monkeypatch):
    called = _registry(monkeypatch, {"a": 0.3, "b": 0.97, "c": 1.0})
    assert analysis.identify(_Series()) == "b"
    assert called == ["a", "b"]


def test_capped_fallback_score_does_not_stop_the_search(monkeypatch):
    called = _registry(monkeypatch, {"flood": 0.9, "grid": 0.92, "other": 0.1})
    assert analysis.identify(_Series()) == "grid"
    assert called == ["flood", "grid", "other"]


def test_nothing_recognised(monkeypatch):
    _registry(monkeypatch, {"a": 0.2, "b": 0.4})
    with pytest.raises(LocalizationError, match="best guess b at 0.40"):
        analysis.identify(_Series())
