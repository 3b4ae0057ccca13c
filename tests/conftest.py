"""Shared test helpers: real-data lookup that skips cleanly, and cached fixture generation."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("IQA_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skip the test when the data are absent (plain clone)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not present: {path}")
    return path


@pytest.fixture(scope="session")
def fixture_dir(tmp_path_factory):
    """Factory: generate (once per session and parameter set) a fixture, return its folder."""
    cache: dict[tuple, Path] = {}

    def make(name: str, **params) -> Path:
        from iqa.fixtures import generate
        key = (name, tuple(sorted(params.items())))
        if key not in cache:
            out = tmp_path_factory.mktemp(name.replace("-", "_"))
            generate(name, out, **params)
            cache[key] = out
        return cache[key]

    return make
