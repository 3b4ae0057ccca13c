"""DICOM loading: ordering by geometry, enhanced frames, rescale, and every documented failure.

Ground truth here is by construction: each synthetic slice holds a value that encodes its
position, so a wrong order or a wrong rescale shows as a wrong value.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from iqa import dicom
from iqa.errors import InputError
from iqa.fixtures.dicomio import SeriesSpec, write_series
from tests.conftest import shared_data

POSITIONS = [-20.0, -10.0, 0.0, 10.0, 20.0, 30.0]


def _stack(n: int = len(POSITIONS), size: int = 32) -> np.ndarray:
    """Slice k is filled with 100*k HU so its index can be read back from any pixel."""
    return np.repeat((100.0 * np.arange(n))[:, None, None], size * size, axis=1).reshape(n, size, size)


def _write(out: Path, order: str = "normal", **kw) -> list[Path]:
    spec = SeriesSpec("CT", _stack(), (0.5, 0.5), POSITIONS, 5.0, seed=kw.pop("seed", 1), **kw)
    return write_series(spec, out, order=order)


@pytest.mark.parametrize("order", ["normal", "reversed", "shuffled"])
def test_slices_ordered_by_position_not_file_name(tmp_path, order):
    _write(tmp_path, order)
    s = dicom.load_series(tmp_path)
    assert s.volume.shape == (6, 32, 32)
    np.testing.assert_array_equal(s.volume[:, 5, 5], 100.0 * np.arange(6))  # exact: integer HU
    np.testing.assert_allclose(s.positions_mm, POSITIONS)
    assert s.spacing_mm == pytest.approx((10.0, 0.5, 0.5))
    assert s.volume.dtype == np.float32


def test_positions_along_oblique_normal(tmp_path):
    """Ordering uses IPP projected on the normal, so an oblique stack still orders correctly."""
    c, si = np.cos(np.radians(30)), np.sin(np.radians(30))
    orient = (1.0, 0.0, 0.0, 0.0, c, si)
    spec = SeriesSpec("CT", _stack(), (0.5, 0.5), POSITIONS, 5.0, seed=2, orientation=orient)
    write_series(spec, tmp_path, order="shuffled")
    s = dicom.load_series(tmp_path)
    np.testing.assert_array_equal(s.volume[:, 0, 0], 100.0 * np.arange(6))
    assert s.spacing_mm[0] == pytest.approx(10.0, abs=1e-4)


def test_header_summary(tmp_path):
    _write(tmp_path, protocol={"kvp": 100, "kernel": "B30f", "mas": 150, "ctdivol_mgy": 9.5})
    s = dicom.load_series(tmp_path)
    assert s.modality == "CT"
    assert s.scanner.serial == "SN0001" and s.scanner.key == "Phantom-Sim/SN0001"
    assert s.acquired.isoformat() == "2026-09-01T08:00:00"
    assert s.protocol["kvp"] == 100 and s.protocol["kernel"] == "B30f"
    assert s.protocol["mas"] == 150 and s.protocol["ctdivol_mgy"] == pytest.approx(9.5)
    assert s.protocol["slice_thickness_mm"] == 5.0


def test_headers_first_then_pixels(tmp_path):
    """The batch path: index with stop_before_pixels, read pixels later, same volume."""
    _write(tmp_path, "reversed")
    outcome, datasets = dicom.scan([tmp_path])
    assert datasets == {} and len(outcome.headers) == 1
    s = dicom.read_series(outcome.headers[0])
    np.testing.assert_array_equal(s.volume[:, 1, 1], 100.0 * np.arange(6))


def test_missing_slice_is_an_error_naming_the_file(tmp_path):
    paths = _write(tmp_path)
    paths[3].unlink()   # position 10 mm
    out = dicom.load([tmp_path])
    assert not out.series and len(out.failures) == 1
    f = out.failures[0]
    assert "missing slice" in f.reason and "0.00 and 20.00" in f.reason
    assert f.path == str(paths[4])


def test_mixed_geometry_in_one_series(tmp_path):
    _write(tmp_path / "a")
    first = dicom.load_series(tmp_path / "a")
    spec = SeriesSpec("CT", _stack(1), (0.7, 0.7), [40.0], 5.0, seed=99, series_uid=first.uid)
    write_series(spec, tmp_path / "b")
    out = dicom.load([tmp_path])
    assert not out.series
    assert "pixel spacing" in out.failures[0].reason and "mixed series" in out.failures[0].reason


def test_duplicate_instances(tmp_path):
    paths = _write(tmp_path / "a")
    (tmp_path / "copy").mkdir()
    shutil.copy(paths[2], tmp_path / "copy" / "dup.dcm")
    out = dicom.load([tmp_path])
    assert not out.series
    assert "duplicate instance" in out.failures[0].reason


def test_series_split_over_folders_is_a_warning(tmp_path):
    paths = _write(tmp_path / "a")
    (tmp_path / "b").mkdir()
    for p in paths[3:]:
        shutil.move(p, tmp_path / "b" / p.name)
    s = dicom.load_series(tmp_path)
    assert s.volume.shape[0] == 6
    assert any("split over 2 folders" in w for w in s.warnings)


def test_bad_files_fail_alone(tmp_path):
    good = tmp_path / "good"
    _write(good)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.dcm").write_bytes(b"")
    (bad / "junk.dcm").write_text("not an image\n")
    (bad / "truth.json").write_text("{}\n")
    src = (good / "0000.dcm").read_bytes()
    (bad / "truncated.dcm").write_bytes(src[: len(src) // 2])
    (bad / "header_only.dcm").write_bytes(src[:700])
    out = dicom.load([tmp_path])
    reasons = {Path(f.path).name: f.reason for f in out.failures}
    assert len(out.series) == 1 and out.series[0].volume.shape[0] == 6
    assert reasons["empty.dcm"] == "empty file (0 bytes)"
    assert reasons["junk.dcm"].startswith("not a DICOM file")
    assert "truth.json" not in reasons   # a plainly non-DICOM sidecar is skipped, not a failure
    scanned, _ = dicom.scan([tmp_path])
    assert [Path(s.path).name for s in scanned.skipped] == ["truth.json"]
    assert "truncated" in reasons["truncated.dcm"] or "pixel data" in reasons["truncated.dcm"]
    assert "header_only.dcm" in reasons
    for f in out.failures:   # one line each, naming the file
        assert "\n" not in str(f) and str(f).startswith(f.path)


def test_no_pixel_data(tmp_path):
    paths = _write(tmp_path)
    ds = pydicom.dcmread(paths[0])
    del ds.PixelData
    ds.save_as(paths[0])
    out = dicom.load([tmp_path])
    assert any("no pixel data" in f.reason for f in out.failures)


def test_wrong_modality_and_non_image(tmp_path):
    paths = _write(tmp_path)
    ds = pydicom.dcmread(paths[0])
    ds.Modality = "US"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    ds.save_as(tmp_path / "us.dcm")
    with pytest.raises(InputError, match="not a CT or MR image .*Ultrasound"):
        dicom.load_series(tmp_path / "us.dcm")


def _compressible(ts_name: str):
    import pydicom.uid as u
    ts = getattr(u, ts_name)
    from pydicom.pixels import get_encoder
    try:
        if not get_encoder(ts).is_available:
            pytest.skip(f"no encoder for {ts_name}")
    except (NotImplementedError, ValueError):
        pytest.skip(f"no encoder for {ts_name}")
    return ts


@pytest.mark.parametrize("ts_name", ["RLELossless", "JPEGLSLossless", "JPEG2000Lossless"])
def test_compressed_copy_decodes_to_the_same_pixels(tmp_path, ts_name):
    ts = _compressible(ts_name)
    rng = np.random.default_rng(0)
    img = rng.normal(0, 30, (3, 48, 48)).round() + np.linspace(-500, 500, 48)[None, None, :]
    plain = write_series(SeriesSpec("CT", img, (0.5, 0.5), [0, 5, 10], 5.0, seed=9), tmp_path / "plain")
    comp = write_series(SeriesSpec("CT", img, (0.5, 0.5), [0, 5, 10], 5.0, seed=9), tmp_path / "comp",
                        transfer_syntax=ts)
    assert pydicom.dcmread(comp[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == ts
    a, b = dicom.load_series(tmp_path / "plain"), dicom.load_series(tmp_path / "comp")
    np.testing.assert_array_equal(a.volume, b.volume)
    del plain


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk not installed")
def test_written_files_parse_with_dcmdump(tmp_path):
    paths = _write(tmp_path)
    res = subprocess.run(["dcmdump", "-q", str(paths[0])], capture_output=True, text=True)
    assert res.returncode == 0
    assert not [ln for ln in (res.stdout + res.stderr).splitlines() if ln.startswith(("E:", "W:"))]


# ------------------------------------------------------------------ real scans (skip when absent)

def test_every_real_file_loads():
    root = shared_data("mr")
    out = dicom.load([root / "acr" / n for n in ("Siemens", "GE_Artist_1.5T_T1", "PhilipsAchieva",
                                                 "Siemens_Sola_1.5T_T1", "SiemensSolaFitLocalizer")]
                     + [root / "snr", root / "uniformity", root / "slicewidth"])
    assert out.failures == []
    n_files = sum(len(s.files) for s in out.series)
    assert n_files == sum(1 for p in root.rglob("*") if p.is_file()) - 11   # all but Siemens2
    for s in out.series:
        assert s.volume.dtype == np.float32 and np.isfinite(s.volume).all()
        assert s.modality == "MR"


def test_enhanced_multiframe_gives_eleven_slices_10mm_apart():
    s = dicom.load_series(shared_data("mr", "acr", "Siemens_Sola_1.5T_T1"))
    assert s.volume.shape == (11, 256, 256)
    assert s.spacing_mm == pytest.approx((10.0, 0.976562, 0.976562))
    np.testing.assert_allclose(np.diff(s.positions_mm), 10.0, atol=1e-3)
    assert s.positions_mm[0] == pytest.approx(-43.279, abs=1e-3)
    assert s.protocol["tr_ms"] == 500 and s.protocol["te_ms"] == 20
    assert s.protocol["slice_thickness_mm"] == 5.0


def test_ge_shuffled_files_are_ordered_by_position():
    folder = shared_data("mr", "acr", "GE_Artist_1.5T_T1")
    s = dicom.load_series(folder)
    assert Path(s.files[0]).name == "Z42" and Path(s.files[-1]).name == "Z36"   # README: Z42 most inferior
    assert np.all(np.diff(s.positions_mm) > 0)
    raw = pydicom.dcmread(folder / "Z42").pixel_array.astype(np.float32)
    np.testing.assert_array_equal(s.volume[0], raw)   # signed int16, slope 1


def test_philips_rescale_applied():
    folder = shared_data("mr", "acr", "PhilipsAchieva")
    s = dicom.load_series(folder)
    ds = pydicom.dcmread(s.files[0])
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(s.volume[0], expected, rtol=1e-6)
    assert s.protocol["tr_ms"] == pytest.approx(500, abs=0.01)


def test_siemens_and_siemens2_together_report_duplicates():
    acr = shared_data("mr", "acr")
    out = dicom.load([acr / "Siemens", acr / "Siemens2"])
    assert not out.series
    assert len(out.failures) == 1 and "duplicate instances" in out.failures[0].reason


def test_loader_never_sorts_by_instance_number():
    """acr/Siemens2: 2.dcm is InstanceNumber 11 — position order must still be monotonic."""
    s = dicom.load_series(shared_data("mr", "acr", "Siemens2"))
    assert np.all(np.diff(s.positions_mm) > 0)
    inst = [pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber for f in s.files]
    assert sorted(inst) == list(inst) or sorted(inst) == list(reversed(inst))
    assert os.path.basename(s.files[-1]) == "2.dcm" or inst[-1] == 11


def test_dicomdir_is_passed_over_and_files_found_by_content(tmp_path):
    """A DICOMDIR beside the images (written by pydicom's FileSet) is skipped with a reason."""
    from pydicom.fileset import FileSet
    src = tmp_path / "src"
    paths = _write(src, "shuffled")
    fs = FileSet()
    for p in paths:
        fs.add(pydicom.dcmread(p))
    fs.write(tmp_path / "media")
    out, _ = dicom.scan([tmp_path / "media"])
    assert out.failures == []
    assert [Path(s.path).name for s in out.skipped] == ["DICOMDIR"]
    s = dicom.load_series(tmp_path / "media")
    np.testing.assert_array_equal(s.volume[:, 0, 0], 100.0 * np.arange(6))   # extension-less files, by content
