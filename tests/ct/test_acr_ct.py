"""ACR CT 464 pipeline against the fixture's ground truth (truth.json, docs/conventions.md).

Tolerances are the acceptance figures of issue 4.  Two sweeps over random geometries
(pixel 0.4-0.8 mm, PSF sigma 0.3-0.8 mm, offsets within +/-15 mm, rotation within +/-5 deg):

* ``NOISE_SWEEP`` spans noise 3-20 HU and checks everything whose estimate is not limited by
  the noise at that level (noise, MTF, NPS, slice width, CNR, centre, rotation, BB distance);
* ``HU_SWEEP`` checks the CT numbers and uniformity to +/-0.5 HU.  A Ø 15 mm ROI mean of the
  fixture's FBP-like noise scatters by about 0.07 x noise per slice, so +/-0.5 HU at three
  standard errors needs noise <= ~7 HU with the ~10 slices a 40 mm module holds at 3 mm;
  at 20 HU it would need ~70 slices per module.  That sweep uses noise 3-7 HU.

CNR fixtures use a rod contrast of twice the noise (CNR 2): the CNR's own scatter is then
~2 % of its value, so +/-10 % tests the method rather than the noise.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from iqa.fixtures import read_truth


def _geometry(rng, pixel, offset_max=15.0):
    off = rng.uniform(-offset_max, offset_max, 2)
    fov = 200.0 + 2 * float(np.max(np.abs(off))) + 12.0
    return dict(pixel_mm=round(pixel, 4), matrix=int(math.ceil(fov / pixel)),
                offset_x_mm=round(float(off[0]), 3), offset_y_mm=round(float(off[1]), 3),
                rotation_deg=round(float(rng.uniform(-5, 5)), 3),
                psf_sigma_mm=round(float(rng.uniform(0.3, 0.8)), 4),
                z_offset_mm=round(float(rng.uniform(-1.5, 1.5)), 3))


def _noise_case(i):
    rng = np.random.default_rng(4640 + i)
    p = _geometry(rng, float(rng.uniform(0.4, 0.8)))
    noise = round(float(np.exp(rng.uniform(np.log(3), np.log(20)))), 3)
    t = float(rng.choice([2.5, 3.0, 5.0, 7.0]))
    p.update(seed=i, noise_hu=noise, lowcon_contrast_hu=round(2 * noise, 3), slice_thickness_mm=t,
             slice_spacing_mm=t, n_slices=int(168 // t))
    return p


def _hu_case(i):
    rng = np.random.default_rng(9464 + i)
    p = _geometry(rng, float(rng.uniform(0.4, 0.8)))
    p.update(seed=100 + i, noise_hu=round(float(rng.uniform(3, 7)), 3), slice_thickness_mm=3.0,
             slice_spacing_mm=3.0, n_slices=56, cupping_hu=round(float(rng.uniform(-8, 8)), 3),
             hu_offset=round(float(rng.uniform(-5, 5)), 3))
    return p


NOISE_SWEEP = [_noise_case(i) for i in range(10)]
HU_SWEEP = [_hu_case(i) for i in range(20)]


def _run(fixture_dir, params):
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", **params)
    truth = read_truth(d)
    series = load_series_dir(d)
    return acr_ct.analyze(series), truth


def load_series_dir(d: Path):
    from iqa.dicom import load
    out = load(sorted(Path(d).glob("*.dcm")))
    assert not out.failures, out.failures
    (series,) = out.series
    return series


def _check_resolution(res, truth, params):
    """resolution_lpcm equals the truth unless a pattern's true CTF lies within 0.02 of the 0.10
    threshold (the measured CTFs scatter by ~0.005 at these noise levels, so such a case is a coin toss)."""
    from iqa.fixtures._ct_render import ctf_square_wave
    nyquist = 5.0 / params["pixel_mm"]
    margins = [abs(ctf_square_wave(f, params["psf_sigma_mm"]) - 0.10) for f in (4, 5, 6, 7, 8, 9, 10, 12)
               if f <= nyquist]
    if min(margins) > 0.02:
        assert res.measurements["resolution_lpcm"].value == truth["metrics"]["resolution_lpcm"]


def _centre_rotation(res, truth):
    g = truth["geometry"]
    assert abs(res.details["centre_px"]["x"] - g["centre"]["col_px"]) <= 0.5      # issue 4: 0.5 px
    assert abs(res.details["centre_px"]["y"] - g["centre"]["row_px"]) <= 0.5
    assert abs(res.details["rotation_deg"] - g["rotation_deg"]) <= 0.5            # issue 4: 0.5 deg


@pytest.mark.parametrize("params", NOISE_SWEEP, ids=[f"n{i}" for i in range(len(NOISE_SWEEP))])
def test_noise_sweep(fixture_dir, params):
    res, truth = _run(fixture_dir, params)
    t = truth["metrics"]
    m = {k: v.value for k, v in res.measurements.items()}
    _centre_rotation(res, truth)
    np.testing.assert_allclose(m["noise_hu"], t["noise_hu"], rtol=0.03)            # issue 4: 3 %
    np.testing.assert_allclose(m["mtf50_lpcm"], t["mtf50_lpcm"], rtol=0.03)        # issue 4: 3 %
    np.testing.assert_allclose(m["mtf10_lpcm"], t["mtf10_lpcm"], rtol=0.03)
    assert abs(m["nps_peak_lpcm"] - t["nps_peak_lpcm"]) <= 0.5                      # issue 4: 0.5 lp/cm
    assert abs(m["slice_thickness_mm"] - t["slice_thickness_mm"]) <= 0.3            # issue 4: 0.3 mm
    np.testing.assert_allclose(m["cnr"], t["cnr"], rtol=0.10)                      # issue 4: 10 %
    # BB centroids of a 1 mm bead: ~0.1 mm each at 20 HU noise; 0.3 mm is 3 SE of the distance
    assert abs(m["distance_error_mm"] - t["distance_error_mm"]) <= 0.3
    # NPS mean frequency is the ratio of two integrals of the same spectrum: 0.5 lp/cm as the peak
    assert abs(m["nps_mean_lpcm"] - t["nps_mean_lpcm"]) <= 0.5
    _check_resolution(res, truth, params)
    assert not res.warnings


@pytest.mark.parametrize("params", HU_SWEEP, ids=[f"h{i}" for i in range(len(HU_SWEEP))])
def test_ct_number_sweep(fixture_dir, params):
    res, truth = _run(fixture_dir, params)
    t = truth["metrics"]
    m = {k: v.value for k, v in res.measurements.items()}
    _centre_rotation(res, truth)
    for name in ("hu_water", "hu_air", "hu_polyethylene", "hu_acrylic", "hu_bone", "water_hu", "uniformity_hu"):
        assert abs(m[name] - t[name]) <= 0.5, (name, m[name], t[name])             # issue 4: 0.5 HU
    np.testing.assert_allclose(m["noise_hu"], t["noise_hu"], rtol=0.03)
    np.testing.assert_allclose(m["mtf50_lpcm"], t["mtf50_lpcm"], rtol=0.03)
    np.testing.assert_allclose(m["mtf10_lpcm"], t["mtf10_lpcm"], rtol=0.03)
    assert abs(m["slice_thickness_mm"] - t["slice_thickness_mm"]) <= 0.3
    _check_resolution(res, truth, params)
    # linearity: measured = offset + 1.0 * nominal in the fixture (hu_gain 1), R^2 ~ 1
    lin = res.details["linearity"]
    assert abs(lin["slope"] - 1.0) < 0.002 and lin["r2"] > 0.99999
    assert abs(lin["intercept_hu"] - params["hu_offset"]) < 0.5 + abs(params["cupping_hu"])


@pytest.mark.parametrize("psf, expected_min, expected_max", [(0.3, 10, 12), (0.5, 7, 7), (0.8, 4, 5)])
def test_bar_resolution(fixture_dir, psf, expected_min, expected_max):
    """Finest bar pattern with Coltman CTF >= 0.10 equals the truth (0.4 mm pixels: all patterns
    below Nyquist)."""
    res, truth = _run(fixture_dir, dict(seed=7, matrix=560, pixel_mm=0.4, psf_sigma_mm=psf, noise_hu=5.0,
                                        n_slices=24, slice_spacing_mm=7.0, slice_thickness_mm=7.0,
                                        rotation_deg=2.0))
    assert res.measurements["resolution_lpcm"].value == truth["metrics"]["resolution_lpcm"]
    assert expected_min <= truth["metrics"]["resolution_lpcm"] <= expected_max


def test_partial_series_reports_missing_modules(fixture_dir):
    """Only modules 1 and 2 in the series: their metrics are measured, 3 and 4 are warned about."""
    d = fixture_dir("acr-ct-464", seed=3, matrix=320, pixel_mm=0.75, n_slices=16, slice_spacing_mm=5.0,
                    z_offset_mm=40.0, noise_hu=5.0, offset_x_mm=-10.0, rotation_deg=-4.0)
    from iqa.phantoms import acr_ct
    truth = read_truth(d)
    res = acr_ct.analyze(load_series_dir(d))
    assert {"hu_bone", "hu_air", "slice_thickness_mm", "cnr", "mtf50_lpcm"} <= set(res.measurements)
    assert "noise_hu" not in res.measurements and "resolution_lpcm" not in res.measurements
    text = " ".join(res.warnings)
    assert "module 3 not covered" in text and "module 4 not covered" in text
    assert abs(res.measurements["hu_bone"].value - truth["metrics"]["hu_bone"]) <= 0.5
    assert abs(res.details["modules"]["1"]["z_mm"] - truth["geometry"]["module_z_mm"]["module1"]) <= 1.0


def test_module_z_found_by_content_reversed_order(fixture_dir):
    """Files written in reverse order and the phantom shifted along z: modules still found."""
    d = fixture_dir("acr-ct-464", seed=5, matrix=300, pixel_mm=0.75, n_slices=40, slice_spacing_mm=4.0,
                    z_offset_mm=-3.3, order="reversed", noise_hu=8.0)
    from iqa.phantoms import acr_ct
    truth = read_truth(d)
    res = acr_ct.analyze(load_series_dir(d))
    for k in (1, 2, 3, 4):
        assert abs(res.details["modules"][str(k)]["z_mm"] - truth["geometry"]["module_z_mm"][f"module{k}"]) <= 1.0


def test_identify_scores(fixture_dir):
    from iqa.phantoms import acr_ct
    acr = load_series_dir(fixture_dir("acr-ct-464", seed=1, matrix=300, pixel_mm=0.75, n_slices=34,
                                      slice_spacing_mm=5.0))
    water = load_series_dir(fixture_dir("ct-water", seed=1, matrix=300, pixel_mm=0.75, n_slices=3))
    assert acr_ct.identify(acr) > 0.9
    assert acr_ct.identify(water) < 0.3


def test_identify_rejects_catphan(fixture_dir):
    from iqa.phantoms import acr_ct
    cat = load_series_dir(fixture_dir("catphan-604", seed=1, matrix=300, pixel_mm=0.75, n_slices=30,
                                      slice_spacing_mm=5.0))
    assert acr_ct.identify(cat) < 0.5


def test_cli_json_and_table(fixture_dir):
    """`iqa analyze DIR --format json` prints every ACR CT 464 metric; the table is readable."""
    from click.testing import CliRunner
    from iqa.cli.main import cli
    d = fixture_dir("acr-ct-464", seed=11, matrix=320, pixel_mm=0.7, n_slices=34, slice_spacing_mm=5.0,
                    offset_x_mm=6.0, rotation_deg=1.5, noise_hu=6.0)
    runner = CliRunner()
    files = [str(f) for f in sorted(Path(d).glob("*.dcm"))]     # truth.json beside them is not DICOM
    r = runner.invoke(cli, ["analyze", *files, "--format", "json"])
    assert r.exit_code == 0, r.output
    (obj,) = json.loads(r.stdout)
    assert obj["phantom"] == "acr-ct-464"
    expected = {"water_hu", "hu_air", "hu_polyethylene", "hu_acrylic", "hu_bone", "noise_hu", "uniformity_hu",
                "cnr", "mtf50_lpcm", "mtf10_lpcm", "resolution_lpcm", "nps_peak_lpcm", "nps_mean_lpcm",
                "slice_thickness_mm", "distance_error_mm", "hu_linearity_slope", "hu_linearity_r2"}
    assert expected <= set(obj["metrics"])
    assert obj["metrics"]["hu_bone"]["status"] == "pass" and obj["metrics"]["hu_bone"]["criterion"]
    assert obj["curves"]["mtf"]["f_lpcm"] and "rotation_deg" in obj["details"]
    r = runner.invoke(cli, ["analyze", *files, "--format", "table"])
    assert r.exit_code == 0
    assert "hu_bone" in r.output and "slice_thickness_mm" in r.output and "pass" in r.output


def test_module_order_reversed_along_z(fixture_dir):
    """Module 1 at the highest z (phantom scanned the other way round): found by content alike."""
    from dataclasses import replace
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", seed=5, matrix=300, pixel_mm=0.75, n_slices=40, slice_spacing_mm=4.0,
                    z_offset_mm=-3.3, order="reversed", noise_hu=8.0)
    series = load_series_dir(d)
    flipped = replace(series, volume=series.volume[::-1], positions_mm=-series.positions_mm[::-1],
                      origin_mm=series.origin_mm[::-1])
    a, b = acr_ct.analyze(series), acr_ct.analyze(flipped)
    assert a.details["module_direction"] == 1 and b.details["module_direction"] == -1
    for k in ("1", "2", "3", "4"):
        assert abs(a.details["modules"][k]["z_mm"] + b.details["modules"][k]["z_mm"]) < 0.5
    for name, m in a.measurements.items():
        assert abs(b.measurements[name].value - m.value) <= 1e-6 * max(1.0, abs(m.value)), name
