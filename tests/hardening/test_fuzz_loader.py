"""Property-based hardening of the loader: mutated headers and bytes never escape as tracebacks.

Whatever a file holds, ``iqa.dicom.load`` must return series or one-line failures naming the
file: the only exceptions allowed out of the loader are iqa's own documented errors.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iqa import dicom
from iqa.errors import IqaError
from iqa.fixtures.dicomio import SeriesSpec, write_series

FUZZ_EXAMPLES = 120


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("fuzz_template")
    img = np.random.default_rng(0).normal(0, 10, (1, 16, 16))
    [path] = write_series(SeriesSpec("CT", img, (0.5, 0.5), [0.0], 5.0, seed=5), out)
    return path.read_bytes()


def _check(path: Path) -> None:
    out = dicom.load([path])
    for f in out.failures:
        assert f.path == str(path)
        assert "\n" not in f.reason and f.reason
    for s in out.series:
        assert s.volume.ndim == 3 and np.isfinite(s.volume).all()


TAGS = ["Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "RescaleSlope",
        "RescaleIntercept", "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel",
        "NumberOfFrames", "Modality", "SOPClassUID", "SeriesInstanceUID", "SliceThickness", "KVP",
        "PhotometricInterpretation", "StudyDate", "AcquisitionTime"]
VALUES = st.one_of(st.none(), st.text(max_size=12), st.integers(-2**31, 2**31), st.floats(allow_nan=True),
                   st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=7),
                   st.sampled_from(["nan", "inf", "-0", "1e308", "\\\\", "0", "1.2.840.10008.5.1.4.1.1.481.2"]))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.sampled_from(TAGS), VALUES), min_size=1, max_size=4))
def test_mutated_headers_fail_cleanly(tmp_path, template, edits):
    ds = pydicom.dcmread(io.BytesIO(template))
    for keyword, value in edits:
        try:
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        except (TypeError, ValueError, OverflowError, AttributeError):
            continue   # pydicom refused the value itself: nothing to write
    path = tmp_path / "mutated.dcm"
    try:
        ds.save_as(path, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - pydicom could not encode the mutation; not our input
        return
    _check(path)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bytes_fail_cleanly(tmp_path, template, data):
    buf = bytearray(template)
    kind = data.draw(st.sampled_from(["flip", "truncate", "splice"]))
    if kind == "flip":
        for _ in range(data.draw(st.integers(1, 16))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
    elif kind == "truncate":
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    else:
        i = data.draw(st.integers(132, len(buf) - 1))
        buf[i:i] = data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path / "bytes.dcm"
    path.write_bytes(bytes(buf))
    _check(path)


def test_loader_raises_only_iqa_errors_for_one_series(tmp_path, template):
    (tmp_path / "a.dcm").write_bytes(template[:300])
    with pytest.raises(IqaError):
        dicom.load_series(tmp_path / "a.dcm")
