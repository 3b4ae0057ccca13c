"""CatPhan 604 against the catphan-604 fixture's ground truth (issue 4 accuracy points).

The analyser finds modules, centre, rotation and inserts from the pixels (never truth.json);
the tests compare with the generator's construction.  Statistical note: a Ø 7 mm insert ROI
(needed to stay 3 PSF SDs inside the Ø 12.2 mm inserts) has a per-slice SD of its mean of about
0.25·σ for this generator's correlated noise, so the ±0.5 HU insert tolerance is demonstrated
at σ = 2 HU with 2.5 mm slices (≈ 9 sensitometry slices: 3 SD ≈ 0.5 HU).
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from iqa.dicom import load
from iqa.errors import InputError, LocalizationError

MATERIALS = ("air", "pmp", "ldpe", "polystyrene", "acrylic", "bone20", "delrin", "bone50", "teflon")


def _geometries() -> list[dict]:
    rng = np.random.default_rng(604)
    out = []
    for k in range(6):
        px = float(rng.uniform(0.45, 0.8))
        out.append(dict(seed=k, pixel_mm=round(px, 3), matrix=int(math.ceil(240.0 / px)),
                        psf_sigma_mm=round(float(rng.uniform(0.3, 0.8)), 3), noise_hu=2.0,
                        offset_x_mm=round(float(rng.uniform(-15, 15)), 2),
                        offset_y_mm=round(float(rng.uniform(-15, 15)), 2),
                        rotation_deg=round(float(rng.uniform(-5, 5)), 2),
                        cupping_hu=round(float(rng.uniform(-4, 4)), 2),
                        hu_offset=round(float(rng.uniform(-5, 5)), 2), hu_gain=round(float(rng.uniform(0.98, 1.02)), 4),
                        slice_thickness_mm=2.5, slice_spacing_mm=2.5, n_slices=66))
    return out


def _series(path):
    out = load([path])
    assert len(out.series) == 1
    return out.series[0]


@pytest.mark.parametrize("params", _geometries(), ids=lambda p: f"seed{p['seed']}")
def test_catphan_accuracy(fixture_dir, params):
    from iqa.phantoms import catphan604

    path = fixture_dir("catphan-604", **params)
    truth = json.loads((path / "truth.json").read_text())
    t = truth["metrics"]
    a = catphan604.analyze(_series(path))
    m = {k: v.value for k, v in a.measurements.items()}
    for name in MATERIALS:
        assert abs(m[f"hu_{name}"] - t[f"hu_{name}"]) <= 0.5, name           # issue 4: insert HU ±0.5 HU
    assert abs(m["water_hu"] - t["water_hu"]) <= 0.5                         # issue 4: ±0.5 HU
    assert abs(m["uniformity_hu"] - t["uniformity_hu"]) <= 0.5
    assert m["mtf50_lpcm"] == pytest.approx(t["mtf50_lpcm"], rel=0.03)       # issue 4: ±3 % (Teflon edge)
    assert m["mtf10_lpcm"] == pytest.approx(t["mtf10_lpcm"], rel=0.03)
    assert abs(m["slice_thickness_mm"] - t["slice_thickness_mm"]) <= 0.3     # issue 4: ±0.3 mm
    assert abs(m["distance_error_mm"] - t["distance_error_mm"]) <= 0.1       # hole square, sub-pixel centroids
    assert abs(m["nps_peak_lpcm"] - t["nps_peak_lpcm"]) <= 0.5               # issue 4: ±0.5 lp/cm
    g = truth["geometry"]
    assert abs(a.details["centre_px"]["row"] - g["centre"]["row_px"]) <= 0.5   # issue 4: centre 0.5 px
    assert abs(a.details["centre_px"]["col"] - g["centre"]["col_px"]) <= 0.5
    assert abs(a.details["rotation_deg"] - g["rotation_deg"]) <= 0.5            # issue 4: rotation 0.5°
    # every module found at its true z (within half a module)
    z = _series(path).positions_mm
    for module, idx in a.details["modules"].items():
        lo, hi = g["module_extents_mm"][module]
        assert all(lo <= z[i - 1] <= hi for i in idx), module
    # inserts found where the generator put them (names by CT-number rank, never by layout)
    for ins in g["inserts"]:
        got = a.details["inserts"][ins["material"]]
        th = math.radians(ins["angle_deg"])
        row = g["centre"]["row_px"] - ins["distance_mm"] * math.sin(th) / params["pixel_mm"]
        col = g["centre"]["col_px"] + ins["distance_mm"] * math.cos(th) / params["pixel_mm"]
        # clear inserts to 0.5 px; the faint ones (acrylic ~15 HU) only need their ROI well inside
        bgv = g["background_hu"]
        tol = 0.5 if abs(ins["hu"] - bgv) >= 100 else 1.5
        assert math.hypot(got["row"] - row, got["col"] - col) <= tol, ins["material"]
    lin = a.details["linearity"]
    assert lin["slope"] == pytest.approx(params["hu_gain"], abs=0.002)
    assert lin["r2"] > 0.9999
    # low contrast: every target counted visible is a real target of that size (within 1 mm),
    # and at σ = 2 HU the 1 % and 0.5 % groups (10 and 5 HU) are complete (CNR ≫ 4)
    lcd = a.details["low_contrast"]
    for grp in lcd["groups"]:
        for tgt in grp["targets"][:grp["visible"]]:
            near = [x for x in g["low_contrast"] if x["diameter_mm"] == tgt["diameter_mm"]]
            gap = min(abs((x["angle_deg"] - tgt["angle_deg"] + 180) % 360 - 180) for x in near)
            assert math.radians(gap) * 50.0 <= 1.0, tgt
    assert m["lcd_visible"] >= 18
    # line pairs: the finest group with CTF >= 0.10 at or below the pixel Nyquist frequency
    assert m["resolution_lpcm"] == t["resolution_lpcm"]


@pytest.fixture(scope="module")
def small_catphan(fixture_dir):
    return fixture_dir("catphan-604", seed=11, pixel_mm=0.8, matrix=300, n_slices=24, slice_spacing_mm=7.0,
                       noise_hu=10.0)


def test_low_contrast_count_falls_with_noise(small_catphan, fixture_dir):
    from iqa.phantoms import catphan604
    quiet = fixture_dir("catphan-604", seed=11, pixel_mm=0.8, matrix=300, n_slices=24, slice_spacing_mm=7.0,
                        noise_hu=2.0)
    loud = catphan604.analyze(_series(small_catphan)).measurements["lcd_visible"].value    # σ = 10 HU
    calm = catphan604.analyze(_series(quiet)).measurements["lcd_visible"].value
    assert calm > loud > 0


def test_identify(small_catphan, fixture_dir):
    from iqa.phantoms import catphan604
    assert catphan604.identify(_series(small_catphan)) >= 0.8
    water = fixture_dir("ct-water", seed=2, pixel_mm=0.8, matrix=300, n_slices=2, rod=True)
    acr = fixture_dir("acr-ct-464", seed=1, pixel_mm=0.8, matrix=320)
    assert catphan604.identify(_series(water)) < 0.5
    assert catphan604.identify(_series(acr)) < 0.5


def test_auto_identification_picks_catphan(small_catphan):
    from iqa.analysis import identify
    assert identify(_series(small_catphan)) == "catphan-604"


def test_mr_series_is_an_input_error(small_catphan):
    from iqa.phantoms import catphan604
    mr = dataclasses.replace(_series(small_catphan), modality="MR")
    with pytest.raises(InputError, match="MR series given"):
        catphan604.analyze(mr)
    assert catphan604.identify(mr) == 0.0


def test_partial_series_reports_missing_modules(small_catphan):
    from iqa.phantoms import catphan604
    s = _series(small_catphan)
    keep = np.flatnonzero(s.positions_mm > -30.0)          # drop CTP729 and CTP715
    part = dataclasses.replace(s, volume=s.volume[keep], positions_mm=s.positions_mm[keep],
                               origin_mm=s.origin_mm[keep])
    a = catphan604.analyze(part)
    assert "hu_teflon" in a.measurements and "water_hu" not in a.measurements
    assert any("CTP729" in w and "not covered" in w for w in a.warnings)


def test_phantom_cut_by_the_field_of_view(fixture_dir):
    from iqa.phantoms import catphan604
    path = fixture_dir("catphan-604", seed=12, pixel_mm=0.8, matrix=300, n_slices=12, slice_spacing_mm=5.0,
                       offset_x_mm=95.0)
    with pytest.raises(LocalizationError, match="field of view"):
        catphan604.analyze(_series(path))


def test_no_sensitometry_is_a_localization_error(small_catphan):
    from iqa.phantoms import catphan604
    s = _series(small_catphan)
    keep = np.flatnonzero(s.positions_mm < -60.0)          # uniformity module only
    part = dataclasses.replace(s, volume=s.volume[keep], positions_mm=s.positions_mm[keep],
                               origin_mm=s.origin_mm[keep])
    with pytest.raises(LocalizationError, match="CTP732"):
        catphan604.analyze(part)
