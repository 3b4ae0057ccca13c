"""ACR CT 464 pipeline on unsuitable input: each a clear error or warning, never a traceback."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iqa.errors import InputError, LocalizationError
from iqa.fixtures import read_truth


def _series(d):
    from iqa.dicom import load
    out = load(sorted(Path(d).rglob("*.dcm")))
    series = out.series[0]
    return series


def _cli(*args):
    from click.testing import CliRunner
    from iqa.cli.main import cli
    return CliRunner().invoke(cli, list(args))


def test_mr_series_is_input_error(fixture_dir):
    from iqa.phantoms import acr_ct
    d = fixture_dir("mr-flood", seed=0)
    mr = _series(d)
    assert acr_ct.identify(mr) == 0.0
    with pytest.raises(InputError, match=r"MR series given.*needs CT"):
        acr_ct.analyze(mr)
    files = [str(f) for f in sorted(Path(d).rglob("*.dcm"))]
    r = _cli("analyze", *files, "--phantom", "acr-ct-464", "--format", "json")
    assert r.exit_code == 1
    assert "MR" in r.output and "Traceback" not in r.output


def test_phantom_cut_by_field_of_view(fixture_dir):
    """A 192 mm field of view with the phantom 12 mm off centre cuts the Ø 200 mm phantom."""
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", seed=2, matrix=256, pixel_mm=0.75, n_slices=17, slice_spacing_mm=10.0,
                    offset_x_mm=12.0, noise_hu=5.0)
    series = _series(d)
    with pytest.raises(LocalizationError, match=r"cut by the field of view at the right.*larger field of view"):
        acr_ct.analyze(series)
    files = [str(f) for f in sorted(Path(d).glob("*.dcm"))]
    r = _cli("analyze", *files, "--phantom", "acr-ct-464")
    assert r.exit_code == 1 and "cut by the field of view" in r.output and "Traceback" not in r.output


def test_single_slice_of_one_module_warns(fixture_dir):
    """One slice through module 4 only: resolution is measured, the other modules are named as missing."""
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", seed=4, matrix=320, pixel_mm=0.7, n_slices=1, z_offset_mm=-60.0,
                    noise_hu=5.0, psf_sigma_mm=0.5, rotation_deg=3.7)
    res = acr_ct.analyze(_series(d))
    assert set(res.measurements) == {"resolution_lpcm"}
    assert res.measurements["resolution_lpcm"].value == read_truth(d)["metrics"]["resolution_lpcm"]
    text = " ".join(res.warnings)
    for k in (1, 2, 3):
        assert f"module {k} not covered" in text
    # no inserts or BBs: the rotation comes from the bar patterns themselves
    assert res.details["rotation_from"] == "module 4 bar patterns"
    assert abs(res.details["rotation_deg"] - 3.7) < 0.5


def test_single_slice_between_modules_is_localization_error(fixture_dir):
    """A thick slice straddling modules 2 and 3 shows no module clearly."""
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", seed=6, matrix=300, pixel_mm=0.75, n_slices=1, z_offset_mm=0.0,
                    slice_thickness_mm=10.0, noise_hu=5.0)
    with pytest.raises(LocalizationError, match=r"none of the 1 slices shows an ACR CT 464 module"):
        acr_ct.analyze(_series(d))


def test_air_only_series_is_localization_error(fixture_dir):
    from iqa.phantoms import acr_ct
    d = fixture_dir("acr-ct-464", seed=8, matrix=256, pixel_mm=0.9, n_slices=2, z_offset_mm=200.0, noise_hu=5.0)
    series = _series(d)
    assert acr_ct.identify(series) == 0.0
    with pytest.raises(LocalizationError, match=r"no Ø 200 mm phantom found"):
        acr_ct.analyze(series)


def test_non_square_pixels_refused(fixture_dir):
    from dataclasses import replace
    from iqa.phantoms import acr_ct
    series = _series(fixture_dir("acr-ct-464", seed=1, matrix=300, pixel_mm=0.75, n_slices=34,
                                 slice_spacing_mm=5.0))
    odd = replace(series, spacing_mm=(series.spacing_mm[0], 0.75, 0.9))
    with pytest.raises(InputError, match="square pixels"):
        acr_ct.analyze(odd)
    assert np.isfinite(acr_ct.identify(series))
