"""Property-based hardening of the analysis pipelines: mutated pixels and geometry (issue 9).

Each pipeline starts from a valid synthetic series (built once, small matrices) and hypothesis
mutates what a scanner or an archive could plausibly hand over: constant, all-zero or
noise-only images, the phantom shifted partly out of the field of view, huge or negative
values (within what the loader's rescale bound lets through), pixel spacing tiny or huge, a
single slice or a slab, slices in reverse order, a cropped matrix, and a CT volume fed to an
MR pipeline (and the reverse).

Property: ``analyze_series(series, phantom=NAME)`` either returns a result whose metric values
are finite numbers (and whose JSON has no NaN), or raises an :class:`iqa.errors.IqaError`.
Anything else (IndexError, ValueError, ZeroDivisionError, a numba error ...) is a bug, and so is
the last-resort "internal error" failure that ``analyze_group`` turns such a bug into.

``FUZZ_COUNTS`` records how many cases ran per pipeline; the session prints it at the end
(``-s``) so the issue's closing note can quote it.
"""
from __future__ import annotations

import json
import math
import traceback
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iqa.analysis import PHANTOMS, analyze_group, analyze_series
from iqa.dicom import FileFailure, Series, load
from iqa.errors import IqaError

#: pipeline -> (fixture name, fixture parameters, index of the series to start from)
BASES = {
    "water": ("ct-water", dict(seed=11, matrix=128, n_slices=2), 0),
    "acr-ct-464": ("acr-ct-464", dict(seed=11, matrix=256, n_slices=12, slice_spacing_mm=15.0), 0),
    "catphan-604": ("catphan-604", dict(seed=11, matrix=256), 0),
    "mr-flood": ("mr-flood", dict(seed=11, matrix=128), 0),
    "acr-mri-large": ("acr-mri-large", dict(seed=11, matrix=256), "axial"),
    "mr-grid": ("mr-grid", dict(seed=11, matrix=128), 0),
}
#: examples per pipeline: 508 cases in about 20 s on one core (most mutations are refused in well under 0.5 s)
EXAMPLES = {"water": 80, "acr-ct-464": 60, "catphan-604": 50, "mr-flood": 100, "acr-mri-large": 60, "mr-grid": 80}
#: The loader refuses |RescaleSlope|, |RescaleIntercept| above this (iqa.dicom.MAX_RESCALE), and
#: stored values are at most 16 bits, so no loaded volume exceeds about 65535 * 1e7 in magnitude.
MAX_GAIN = 1e7

FUZZ_COUNTS: Counter = Counter()
OUTCOMES: Counter = Counter()


@pytest.fixture(scope="module")
def bases(fixture_dir) -> dict[str, Series]:
    out = {}
    for phantom, (fixture, params, which) in BASES.items():
        loaded = load([fixture_dir(fixture, **params)])
        assert not loaded.failures, loaded.failures
        series = sorted(loaded.series, key=lambda s: s.description)
        if isinstance(which, str):
            [s] = [s for s in series if which in s.description.lower() or which in "".join(s.files)]
        else:
            s = series[which]
        out[phantom] = s
    return out


def test_bases_are_analysed(bases):
    """The unmutated starting points are valid, so a refusal below is the mutation's doing."""
    for phantom, s in bases.items():
        result = analyze_series(s, phantom=phantom)
        assert result.metrics, phantom


# --------------------------------------------------------------------------------------------
# mutations: each takes (series, draw) and returns a new Series; the input is never modified

def _with(series: Series, volume: np.ndarray, **changes) -> Series:
    return replace(series, volume=np.ascontiguousarray(volume, dtype=np.float32), **changes)


def _slices(series: Series, index) -> Series:
    idx = np.arange(series.volume.shape[0])[index]
    idx = np.atleast_1d(idx)
    positions = series.positions_mm[idx]
    dz = float(np.median(np.diff(positions))) if len(idx) > 1 else series.spacing_mm[0]
    return _with(series, series.volume[idx], positions_mm=positions, origin_mm=series.origin_mm[idx],
                 spacing_mm=(dz, *series.spacing_mm[1:]))


def m_constant(s, draw):
    value = draw(st.sampled_from([0.0, 1.0, -1000.0, 1000.0, 65535.0, -3.0e4, 1e10]))
    return _with(s, np.full(s.volume.shape, value))


def m_zero(s, draw):
    return _with(s, np.zeros_like(s.volume))


def m_noise(s, draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    mean = draw(st.sampled_from([0.0, 100.0, -1000.0, 1000.0]))
    sd = draw(st.sampled_from([0.01, 1.0, 10.0, 300.0]))
    noise = rng.normal(mean, sd, s.volume.shape)
    if s.modality == "MR":
        noise = np.abs(noise)
    return _with(s, noise)


def m_shift(s, draw):
    """Phantom moved partly (or wholly) out of the field of view; the uncovered part is air."""
    _, ny, nx = s.volume.shape
    fy = draw(st.floats(-0.6, 0.6) | st.floats(-0.95, 0.95))
    fx = draw(st.floats(-0.6, 0.6) | st.floats(-0.95, 0.95))
    dy, dx = int(round(fy * ny)), int(round(fx * nx))
    fill = float(s.volume.min())
    out = np.full_like(s.volume, fill)
    src = s.volume[:, max(0, -dy):ny - max(0, dy), max(0, -dx):nx - max(0, dx)]
    out[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
    return _with(s, out)


def m_gain(s, draw):
    """value * gain + offset: huge, tiny or negative values a rescale could produce."""
    gain = draw(st.sampled_from([1e3, -1.0, 1e-3, 1e-6, 1e5, MAX_GAIN, -MAX_GAIN]))
    offset = draw(st.sampled_from([0.0, -MAX_GAIN, MAX_GAIN, -1024.0]))
    return _with(s, s.volume.astype(np.float64) * gain + offset)


def m_spacing(s, draw):
    f = draw(st.sampled_from([0.25, 4.0, 0.1, 1e-2, 50.0, 1e3, 1e-4]))
    which = draw(st.sampled_from(["xy", "z", "all", "x"]))
    dz, dy, dx = s.spacing_mm
    if which in ("xy", "all"):
        dy, dx = dy * f, dx * f
    if which == "x":
        dx = dx * f
    positions = s.positions_mm
    if which in ("z", "all"):
        dz = dz * f
        positions = positions[0] + (positions - positions[0]) * f
    return _with(s, s.volume, spacing_mm=(dz, dy, dx), positions_mm=positions)


def m_single(s, draw):
    return _slices(s, draw(st.integers(0, s.volume.shape[0] - 1)))


def m_slab(s, draw):
    n = s.volume.shape[0]
    start = draw(st.integers(0, n - 1))
    stop = draw(st.integers(start + 1, n))
    return _slices(s, slice(start, stop))


def m_reverse(s, draw):
    """Slices in reverse order along a still-ascending position axis (patient flipped)."""
    return _with(s, s.volume[::-1])


def m_flip(s, draw):
    axis = draw(st.sampled_from([1, 2]))
    return _with(s, np.flip(s.volume, axis))


def m_crop(s, draw):
    """A smaller matrix, down to a few pixels (scouts and reformats can be tiny)."""
    _, ny, nx = s.volume.shape
    h = draw(st.integers(1, ny))
    w = draw(st.integers(1, nx))
    y0 = draw(st.integers(0, ny - h))
    x0 = draw(st.integers(0, nx - w))
    return _with(s, s.volume[:, y0:y0 + h, x0:x0 + w])


def m_quantise(s, draw):
    """Few grey levels (a badly windowed secondary capture)."""
    levels = draw(st.sampled_from([2, 3, 8]))
    v = s.volume
    lo, hi = float(v.min()), float(v.max())
    q = np.round((v - lo) / max(hi - lo, 1e-6) * (levels - 1))
    return _with(s, q * (hi - lo) / (levels - 1) + lo)


#: mild first: hypothesis favours (and shrinks towards) early entries, so a list led by the
#: destructive ones would mostly test "no phantom found"
MUTATIONS = {f.__name__[2:]: f for f in (m_reverse, m_flip, m_slab, m_shift, m_gain, m_spacing, m_single, m_crop,
                                          m_quantise, m_noise, m_constant, m_zero)}


def _check(series: Series, phantom: str, label: str) -> None:
    try:
        result = analyze_series(series, phantom=phantom)
    except IqaError as exc:
        OUTCOMES[phantom, "refused"] += 1
        assert str(exc), label
        assert "\n" not in str(FileFailure("x", str(exc))), label
        return
    except Exception as exc:  # noqa: BLE001 - the property under test: nothing else may escape
        tb = "".join(traceback.format_exception(exc))
        pytest.fail(f"{phantom} on {label} raised {type(exc).__name__}: {exc}\n{tb}")
    OUTCOMES[phantom, "measured"] += 1
    for name, metric in result.metrics.items():
        assert isinstance(metric.value, (int, float)) and math.isfinite(metric.value), (label, name, metric)
    json.dumps(result.to_dict(), allow_nan=False)
    # The orchestration's last-resort guard must not be what handled it either.
    for item in analyze_group([series], phantom=phantom):
        if isinstance(item, FileFailure):
            assert "internal error" not in item.reason, (label, item.reason)


def _mutate(data, series: Series) -> tuple[Series, str]:
    names = data.draw(st.lists(st.sampled_from(list(MUTATIONS)), min_size=1, max_size=3), label="mutations")
    for name in names:
        series = MUTATIONS[name](series, data.draw)
    return series, "+".join(names)


def _fuzz(bases, phantom: str, data, *, source: str | None = None) -> None:
    series, label = _mutate(data, bases[source or phantom])
    if source and PHANTOMS[phantom][1] != series.modality:
        series = replace(series, modality=PHANTOMS[phantom][1])
        label = f"{source} relabelled {series.modality}: {label}"
    FUZZ_COUNTS[phantom] += 1
    _check(series, phantom, label)


def _settings(phantom: str):
    return settings(max_examples=EXAMPLES[phantom], deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


@pytest.mark.parametrize("phantom", list(BASES))
def test_mutated_series_give_finite_metrics_or_iqa_errors(bases, phantom):
    @_settings(phantom)
    @given(data=st.data())
    def run(data):
        _fuzz(bases, phantom, data)

    run()


CROSS = [("water", "mr-flood"), ("acr-ct-464", "acr-mri-large"), ("catphan-604", "mr-grid"),
         ("mr-flood", "water"), ("acr-mri-large", "acr-ct-464"), ("mr-grid", "catphan-604")]


@pytest.mark.parametrize(("phantom", "source"), CROSS)
def test_other_modality_volumes_fail_cleanly(bases, phantom, source):
    """A CT volume relabelled MR (and the reverse), mutated, through another modality's pipeline."""
    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def run(data):
        _fuzz(bases, phantom, data, source=source)

    run()
    # and unmutated: the whole foreign phantom
    _check(replace(bases[source], modality=PHANTOMS[phantom][1]), phantom, f"{source} as {phantom}")


def test_flood_pair_with_mutated_partner(bases):
    """NEMA two-acquisition SNR: the partner series mutated (noise only, shifted, constant ...)."""
    from iqa.phantoms import flood

    a = bases["mr-flood"]

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(data=st.data())
    def run(data):
        b, label = _mutate(data, a)
        FUZZ_COUNTS["mr-flood pair"] += 1
        try:
            extra = flood.analyze_pair(a, b)
        except IqaError:
            return
        except Exception as exc:  # noqa: BLE001 - the property under test
            pytest.fail(f"analyze_pair on {label} raised {type(exc).__name__}: {exc}\n"
                        + "".join(traceback.format_exception(exc)))
        assert all(math.isfinite(m.value) for m in extra.values()), (label, extra)

    run()


def test_internal_error_guard_keeps_the_batch_going(bases, monkeypatch, caplog):
    """A pipeline bug becomes a one-line failure for that series (traceback at DEBUG); the rest go on."""
    import logging

    from iqa.analysis import phantom_module

    water, flood = bases["water"], bases["mr-flood"]
    mod = phantom_module("water")

    def broken(series):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(mod, "analyze", broken)
    with caplog.at_level(logging.DEBUG, logger="iqa.analysis"):
        out = list(analyze_group([water, flood]))
    failure, result = out
    assert isinstance(failure, FileFailure) and failure.path == water.files[0]
    assert failure.reason == ("internal error while analysing as water: ZeroDivisionError: float division by zero "
                              "(please report)")
    assert result.phantom == "mr-flood" and result.metrics
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


# --------------------------------------------------------------------------------------------
# a few through ``iqa analyze`` on written files

def _write(outdir, series: Series, volume: np.ndarray, *, spacing=None, name="s"):
    from iqa.fixtures.dicomio import SeriesSpec, write_series

    volume = np.asarray(volume, dtype=np.float64)
    lo, hi = float(volume.min()), float(volume.max())
    # a slope/intercept that keeps the mutated values (as a scanner's rescale would)
    slope = max((hi - lo) / 60000.0, 1e-3)
    spec = SeriesSpec(series.modality, volume, spacing or series.pixel_spacing_mm, list(series.positions_mm),
                      series.slice_thickness_mm or 5.0, seed=name, name=name, description=f"fuzz {name}",
                      rescale_slope=slope, rescale_intercept=lo)
    write_series(spec, outdir / name)


def test_written_mutations_through_cli(tmp_path, bases):
    """Written to disk and run through ``iqa analyze``: exit 0 or 1, one line per failure, no traceback."""
    from iqa.cli.main import cli

    ct, mr = bases["water"], bases["mr-flood"]
    _write(tmp_path, ct, np.zeros_like(ct.volume), name="ct_zero")
    _write(tmp_path, ct, np.roll(ct.volume, ct.volume.shape[2] // 2 + 10, axis=2), name="ct_shifted")
    _write(tmp_path, ct, ct.volume * 1e4, name="ct_huge")
    _write(tmp_path, ct, ct.volume, spacing=(0.001, 0.001), name="ct_tiny_pixels")
    _write(tmp_path, mr, np.abs(np.random.default_rng(1).normal(0, 10, mr.volume.shape)), name="mr_noise")
    _write(tmp_path, mr, np.full(mr.volume.shape, 500.0), name="mr_constant")
    _write(tmp_path, mr, mr.volume, spacing=(40.0, 40.0), name="mr_huge_pixels")
    runner = CliRunner()
    for phantom in ("auto", "water", "acr-ct-464", "mr-flood", "acr-mri-large"):
        res = runner.invoke(cli, ["analyze", str(tmp_path), "--phantom", phantom, "--format", "json"])
        FUZZ_COUNTS["cli"] += 1
        assert res.exit_code in (0, 1), (phantom, res.exit_code, res.output, res.exception)
        assert res.exception is None or isinstance(res.exception, SystemExit), (phantom, res.exception)
        assert "Traceback" not in res.output and "internal error" not in res.output, res.output
        results = json.loads(res.stdout)
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        for r in results:
            for m in r["metrics"].values():
                assert math.isfinite(m["value"])
        assert all(ln.count(": ") >= 1 for ln in lines), lines
        # every one of the 7 series is accounted for: a result or a one-line failure naming it
        named = {p.name for p in tmp_path.iterdir()}
        mentioned = {n for n in named if any(f"/{n}/" in f for r in results for f in r["files"])} | \
                    {n for n in named if any(f"/{n}/" in ln for ln in lines)}
        assert mentioned == named, (phantom, named - mentioned, res.output)


def teardown_module(module):
    if FUZZ_COUNTS:
        print("\nfuzz cases run:", dict(FUZZ_COUNTS), "total", sum(FUZZ_COUNTS.values()))
        print("outcomes:", dict(sorted(OUTCOMES.items())))
