"""Issue 9 bad-input catalogue: each case is built here, then given to ``iqa analyze`` beside a good
series.  Every one must give a one-line error naming the file and the reason, exit code 1, no
traceback, and the good series must still be analysed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import UID

from iqa.cli.main import cli

pytestmark = pytest.mark.xdist_group("hardening")


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    from iqa.fixtures import generate
    out = tmp_path_factory.mktemp("good_water")
    generate("ct-water", out, matrix=128, n_slices=1, seed=4)
    return out


def _template(good: Path) -> pydicom.Dataset:
    return pydicom.dcmread(next(iter(sorted(good.glob("*.dcm")))))


def _new_uids(ds: pydicom.Dataset, tag: str) -> pydicom.Dataset:
    ds.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["series", tag])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["sop", tag])
    return ds


def case_zero_bytes(ds, path):
    path.write_bytes(b"")


def case_truncated(ds, path):
    ds.save_as(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 5000])


def case_no_pixel_data(ds, path):
    del ds.PixelData
    ds.save_as(path)


def case_missing_pixel_spacing(ds, path):
    del ds.PixelSpacing
    ds.save_as(path)


def case_wrong_vm(ds, path):
    ds["PixelSpacing"].value = ["0.5"]                     # VM 1 where 2 is required
    ds.save_as(path)


def case_wrong_vr(ds, path):
    ds.PixelSpacing = ["0.500000", "0.500000"]
    ds.save_as(path)
    data = path.read_bytes()
    path.write_bytes(data.replace(b"0.500000\\0.500000", b"abc.defg\\h.ijklmn", 1))   # DS holding text


def _retype(ds, sop_class: str, modality: str):
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.Modality = modality


def case_rt_dose(ds, path):
    _retype(ds, "1.2.840.10008.5.1.4.1.1.481.2", "RTDOSE")
    ds.save_as(path)


def case_structured_report(ds, path):
    _retype(ds, "1.2.840.10008.5.1.4.1.1.88.22", "SR")
    del ds.PixelData
    ds.save_as(path)


def case_presentation_state(ds, path):
    _retype(ds, "1.2.840.10008.5.1.4.1.1.11.1", "PR")
    del ds.PixelData
    ds.save_as(path)


def case_ultrasound(ds, path):
    _retype(ds, "1.2.840.10008.5.1.4.1.1.6.1", "US")
    ds.save_as(path)


def case_rgb_secondary_capture(ds, path):
    _retype(ds, "1.2.840.10008.5.1.4.1.1.7", "OT")
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.zeros((ds.Rows, ds.Columns, 3), np.uint8).tobytes()
    ds.save_as(path)


def case_compressed_without_decoder(ds, path):
    # A transfer syntax no installed plugin decodes (MPEG2 video), data encapsulated.
    from pydicom.encaps import encapsulate
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")
    ds.PixelData = encapsulate([b"\xff\x0a" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)


def case_gigabyte_claim(ds, path):
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1000
    ds.save_as(path)


def case_nan_rescale(ds, path):
    ds.RescaleSlope = "nan"
    ds.save_as(path)


def case_inf_rescale(ds, path):
    ds.RescaleIntercept = "inf"
    ds.save_as(path)


CASES = {name[5:]: fn for name, fn in sorted(globals().items()) if name.startswith("case_")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_1_and_good_series_survive(tmp_path, good, case):
    shutil.copytree(good, tmp_path / "good")
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    bad = bad_dir / f"{case}.dcm"
    CASES[case](_new_uids(_template(good), case), bad)
    res = CliRunner().invoke(cli, ["analyze", str(tmp_path), "--format", "json"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert str(bad) in errors[0]
    results = json.loads(res.stdout)
    assert [r["phantom"] for r in results] == ["water"]


def test_one_slice_where_a_volume_is_needed(tmp_path):
    """An ACR CT 464 analysis of a single slice reports the modules it cannot see, never a traceback."""
    from iqa.fixtures import generate
    generate("acr-ct-464", tmp_path / "acr", matrix=256, seed=2)
    files = sorted((tmp_path / "acr").glob("*.dcm"))
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(files[len(files) // 2], one / "slice.dcm")
    res = CliRunner().invoke(cli, ["analyze", str(one), "--phantom", "acr-ct-464", "--format", "json"])
    assert "Traceback" not in res.output
    if res.exit_code == 0:
        [r] = json.loads(res.stdout)
        assert any("module" in w for w in r["warnings"])
    else:
        assert res.exit_code == 1 and str(one / "slice.dcm") in res.stderr
