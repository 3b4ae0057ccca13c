"""DICOM discovery, series grouping and volume loading.

The rules (DICOM PS3.3 C.7.6.2 Image Plane module, C.7.6.16 Multi-frame Functional Groups):

* files are recognised by content (the ``DICM`` prefix, or an implicit-VR header), never by
  their extension;
* slices are grouped by SeriesInstanceUID and ordered by their position along the slice
  normal, ``n = row_cosines x column_cosines`` and ``d = n . ImagePositionPatient`` (mm),
  never by file name or InstanceNumber;
* enhanced (multi-frame) CT and MR frames are expanded from their functional groups
  (PlanePosition, PlaneOrientation, PixelMeasures, PixelValueTransformation) and then treated
  exactly like single-frame slices;
* the stored values are rescaled, ``value = stored * RescaleSlope + RescaleIntercept``
  (PS3.3 C.11.1.1.2), so CT volumes are in HU.

Problems are reported, not hidden: a file that cannot be used becomes a :class:`FileFailure`
(one line naming the file and the reason), a series that cannot be assembled raises
:class:`~iqa.errors.SeriesError`, and oddities that do not stop analysis become warnings
on the :class:`Series`.
"""
from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np

from iqa.errors import InputError, SeriesError

log = logging.getLogger(__name__)

#: SOP classes iqa analyses (PS3.4 B.5).
IMAGE_SOP_CLASSES = MappingProxyType({
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
})
SUPPORTED_MODALITIES = ("CT", "MR")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: Refuse images larger than this before decoding (hostile Rows x Columns x Frames): one
#: frame at most 4096 x 4096, a whole file at most 2**29 pixels (2 GiB as float32).
MAX_FRAME_SIDE = 4096
MAX_PIXELS = 2**29
#: Relative tolerance when comparing pixel spacing between slices of one series.
SPACING_RTOL = 1e-3
#: Tolerance on direction cosines between slices of one series.
ORIENTATION_ATOL = 1e-3
#: Rescale slope/intercept beyond this magnitude are corrupt headers (float32 would overflow).
MAX_RESCALE = 1e7
#: A gap between neighbouring slices larger than this many median spacings is a missing slice.
MISSING_SLICE_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class FileFailure:
    """A file (or series) that could not be used, with a one-line reason."""

    path: str
    reason: str

    def __post_init__(self) -> None:
        # One line, always: header text or file names may carry control characters.
        object.__setattr__(self, "path", _one_line(self.path))
        object.__setattr__(self, "reason", _one_line(self.reason))

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _one_line(text: str) -> str:
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


@dataclass(frozen=True, slots=True)
class Scanner:
    """Scanner identity from the General Equipment module (PS3.3 C.7.5.1)."""

    manufacturer: str = ""
    model: str = ""
    station: str = ""
    serial: str = ""

    @property
    def key(self) -> str:
        """Stable identity for trending: ``model/serial`` (station when no serial)."""
        ident = self.serial or self.station or "unknown"
        return f"{self.model or self.manufacturer or 'unknown'}/{ident}"

    def to_dict(self) -> dict[str, str]:
        return {"manufacturer": self.manufacturer, "model": self.model,
                "station": self.station, "serial": self.serial}


@dataclass(frozen=True, slots=True)
class Frame:
    """One 2-D image of a series: a single-frame file, or one frame of a multi-frame file."""

    path: str
    frame: int | None          # index into a multi-frame file, None for single-frame
    position_mm: float         # along the slice normal
    ipp: tuple[float, float, float]
    sop_uid: str
    instance: int | None
    slope: float
    intercept: float
    rows: int
    columns: int
    pixel_spacing: tuple[float, float]   # (row spacing = dy, column spacing = dx), mm
    orientation: tuple[float, ...]       # ImageOrientationPatient, 6 direction cosines
    echo: int | None


@dataclass(frozen=True, slots=True)
class SeriesHeader:
    """Everything known about a series before its pixels are read."""

    uid: str
    modality: str
    sop_class: str
    frames: tuple[Frame, ...]            # ordered by position along the normal
    scanner: Scanner
    acquired: datetime | None
    protocol: dict[str, Any]        # treat as read-only
    description: str
    study_uid: str
    frame_of_reference_uid: str
    image_type: tuple[str, ...]
    slice_thickness_mm: float | None
    warnings: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.path for f in self.frames))

    @property
    def positions_mm(self) -> np.ndarray:
        return np.array([f.position_mm for f in self.frames], dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """A loaded image series.

    Attributes
    ----------
    volume : float32 array (z, y, x); CT in HU, MR in rescaled stored units.
    spacing_mm : (slice spacing, row spacing dy, column spacing dx) in mm.  For a single
        slice the slice spacing is the nominal SliceThickness (or 0 when unknown).
    positions_mm : slice positions along the normal (mm), ascending, one per z.
    origin_mm : ImagePositionPatient of each slice (z, 3), mm.
    """

    uid: str
    modality: str
    volume: np.ndarray
    spacing_mm: tuple[float, float, float]
    positions_mm: np.ndarray
    origin_mm: np.ndarray
    orientation: tuple[float, ...]
    scanner: Scanner
    acquired: datetime | None
    protocol: dict[str, Any]        # treat as read-only
    description: str = ""
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    image_type: tuple[str, ...] = ()
    slice_thickness_mm: float | None = None
    files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sop_class: str = ""

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """(dy, dx) in mm."""
        return (self.spacing_mm[1], self.spacing_mm[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.volume.shape  # type: ignore[return-value]

    @property
    def normal(self) -> np.ndarray:
        return _normal(self.orientation)

    @property
    def where(self) -> str:
        """Short location for messages: first file and UID."""
        first = self.files[0] if self.files else "?"
        return f"{first} (series {self.uid})"


@dataclass(slots=True)
class LoadOutcome:
    series: list[Series] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)


@dataclass(slots=True)
class ScanOutcome:
    headers: list[SeriesHeader] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)
    skipped: list[FileFailure] = field(default_factory=list)   # DICOMDIR etc., not errors


# --------------------------------------------------------------------------- discovery

def iter_files(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Every regular file under ``paths`` (files or folders, recursively), sorted per folder."""
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
        elif os.path.exists(p):
            yield p
        else:
            # Reported by the caller as a failure: keep the generator simple.
            yield p


#: Extensions of files that are plainly not DICOM (reports, notes, truth.json beside fixtures):
#: passed over with a reason rather than reported as failures.  Anything else that is not
#: DICOM — a ``.dcm`` that is not, a file without extension holding junk — is a failure.
SIDECAR_EXTENSIONS = frozenset({".json", ".txt", ".csv", ".md", ".html", ".htm", ".xml", ".pdf", ".png",
                                ".jpg", ".jpeg", ".gif", ".svg", ".log", ".ini", ".toml", ".yaml", ".yml",
                                ".py", ".sqlite", ".db", ".zip", ".gz", ".tar", ".DS_Store"})


def _is_sidecar(path: str) -> bool:
    name = os.path.basename(path)
    return name.startswith(".") or os.path.splitext(name)[1].lower() in SIDECAR_EXTENSIONS


def _looks_like_dicom(path: str) -> tuple[bool, str]:
    """Sniff the first bytes: Part 10 prefix, or a raw implicit-VR stream starting at (0008,xxxx)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except FileNotFoundError:
        return False, "no such file"
    except OSError as exc:
        return False, f"cannot read ({exc.strerror or exc})"
    if not head:
        return False, "empty file (0 bytes)"
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True, ""
    if len(head) >= 8 and head[0:2] in (b"\x08\x00", b"\x02\x00") and head[2:4] < b"\x30\x00":
        return True, ""
    return False, "not a DICOM file (no DICM prefix)"


def read_dataset(path: str):
    """Read one file with pydicom; raise :class:`InputError` naming the file on failure.

    Large elements (the pixel data) are deferred: skipped over and read from the file only
    when first used, so one parse serves both grouping and decoding, and indexing can still
    check that the pixel data are present and complete.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    ok, why = _looks_like_dicom(path)
    if not ok:
        raise InputError(f"{path}: {why}")
    try:
        ds = pydicom.dcmread(path, defer_size="16 KB", force=True)
    except InvalidDicomError as exc:
        raise InputError(f"{path}: not a DICOM file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - boundary with a parser fed untrusted bytes:
        # pydicom raises a dozen types (BytesLengthException, struct.error, ...) for corrupt
        # input; each becomes one line naming the file, and nothing else is affected.
        raise InputError(f"{path}: truncated or corrupt DICOM ({type(exc).__name__}: {_short(exc)})") from None
    return ds


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- header parsing

_TEXT_VRS = frozenset({"DS", "IS", "UI", "CS", "DA", "TM", "DT", "AS"})
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FD": "d", "FL": "f"}
_TAGS: dict[str, tuple[int, str]] = {}


def _tag(keyword: str) -> tuple[int, str] | None:
    found = _TAGS.get(keyword)
    if found is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword
        tag = tag_for_keyword(keyword)
        if tag is None:
            return None
        found = _TAGS[keyword] = (tag, dictionary_VR(tag))
    return found


def _fast_value(ds, tag: int, vr: str) -> Any:
    """Parse a still-raw element ourselves.

    pydicom converts each raw element through charset decoding and validation hooks,
    which costs ~0.1 ms per element and made header indexing twice as slow as reading the
    files; the handful of ASCII and binary numeric VRs the loader needs are parsed here
    directly (PS3.5 6.2).  Anything else goes through pydicom.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    raw = getattr(elem, "value", None)
    if type(elem).__name__ != "RawDataElement" or not isinstance(raw, (bytes, bytearray)):
        return _MISSING
    vr = elem.VR or vr
    if vr in _TEXT_VRS:
        text = raw.decode("ascii", "replace").strip(" \x00")
        if not text:
            return None
        parts = [p.strip(" \x00") for p in text.split("\\")]
        return parts[0] if len(parts) == 1 else parts
    fmt = _BINARY_VRS.get(vr)
    if fmt is not None:
        import struct
        size = struct.calcsize(fmt)
        if not raw or len(raw) % size:
            return _MISSING
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
        vals = struct.unpack(("<" if little else ">") + fmt * (len(raw) // size), raw)
        return vals[0] if len(vals) == 1 else list(vals)
    return _MISSING


_MISSING = object()


def _get(ds, keyword: str, default: Any = None) -> Any:
    """Attribute value or default; a malformed element counts as absent."""
    if ds is None:
        return default
    found = _tag(keyword)
    if found is not None:
        try:
            value = _fast_value(ds, *found)
        except Exception:  # noqa: BLE001 - malformed raw bytes: let pydicom judge below
            value = _MISSING
        if value is not _MISSING:
            return default if value is None or value == "" else value
    try:
        value = ds.get(keyword, None)
    except Exception:  # pydicom raises many types for malformed values  # noqa: BLE001
        return default
    if value is None:
        return default
    try:
        value = value.value if hasattr(value, "value") and not isinstance(value, (str, bytes)) else value
    except Exception:  # noqa: BLE001
        return default
    if value == "" or value is None:
        return default
    return value


def _float(value: Any, default: float | None = None) -> float | None:
    if value is None:
        return default
    try:
        if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, (str, bytes))):
            value = value[0]
        out = float(value)
    except (TypeError, ValueError, IndexError):
        return default
    return out if math.isfinite(out) else default


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        vals = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def _seq_item(ds, keyword: str):
    seq = _get(ds, keyword)
    try:
        return seq[0] if seq is not None and len(seq) else None
    except Exception:  # noqa: BLE001
        return None


def _fg_item(ds, keyword: str):
    """A functional-group macro item, from the shared groups or else the first frame's."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        item = _seq_item(ds, groups)
        found = _seq_item(item, keyword) if item is not None else None
        if found is not None:
            return found
    return None


def _normal(orientation: tuple[float, ...]) -> np.ndarray:
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise ValueError("degenerate ImageOrientationPatient")
    return n / norm


def _parse_datetime(date: Any, time: Any) -> datetime | None:
    d = _str(date)
    if len(d) < 8 or not d[:8].isdigit():
        return None
    t = _str(time).split("+")[0].split("-")[0]
    try:
        year, month, day = int(d[0:4]), int(d[4:6]), int(d[6:8])
        hh = int(t[0:2]) if len(t) >= 2 else 0
        mm = int(t[2:4]) if len(t) >= 4 else 0
        ss = int(t[4:6]) if len(t) >= 6 else 0
        frac = t.split(".")[1][:6].ljust(6, "0") if "." in t else "0"
        return datetime(year, month, day, hh, mm, min(ss, 59), int(frac))
    except (ValueError, IndexError):
        return None


def acquisition_datetime(ds) -> datetime | None:
    """First usable of AcquisitionDateTime, Acquisition, Content, Series or Study date/time."""
    adt = _str(_get(ds, "AcquisitionDateTime"))
    if not adt:
        fc = _seq_item(_seq_item(ds, "PerFrameFunctionalGroupsSequence") or ds, "FrameContentSequence")
        adt = _str(_get(fc, "FrameAcquisitionDateTime")) if fc is not None else ""
    if adt:
        found = _parse_datetime(adt[:8], adt[8:])
        if found is not None:
            return found
    for d, t in (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime"),
                 ("SeriesDate", "SeriesTime"), ("StudyDate", "StudyTime")):
        found = _parse_datetime(_get(ds, d), _get(ds, t))
        if found is not None:
            return found
    return None


def _protocol(ds, modality: str) -> dict[str, Any]:
    """Acquisition protocol summary; the keys are what trend series are keyed on."""
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if value is not None and value != "":
            out[key] = value

    thickness = _float(_get(ds, "SliceThickness"))
    if thickness is None:
        pm = _fg_item(ds, "PixelMeasuresSequence")
        thickness = _float(_get(pm, "SliceThickness")) if pm is not None else None
    put("slice_thickness_mm", thickness)
    if modality == "CT":
        put("kvp", _float(_get(ds, "KVP")))
        mas = _float(_get(ds, "Exposure"))
        if mas is None:
            ma, ms = _float(_get(ds, "XRayTubeCurrent")), _float(_get(ds, "ExposureTime"))
            mas = ma * ms / 1000.0 if ma is not None and ms is not None else None
        put("mas", mas)
        put("ctdivol_mgy", _float(_get(ds, "CTDIvol")))
        put("kernel", _str(_get(ds, "ConvolutionKernel")))
    else:
        timing = _fg_item(ds, "MRTimingAndRelatedParametersSequence")
        echo = _fg_item(ds, "MREchoSequence")
        put("tr_ms", _float(_get(ds, "RepetitionTime")) or (_float(_get(timing, "RepetitionTime")) if timing is not None else None))
        put("te_ms", _float(_get(ds, "EchoTime")) or (_float(_get(echo, "EffectiveEchoTime")) if echo is not None else None))
        put("flip_angle_deg", _float(_get(ds, "FlipAngle")) or (_float(_get(timing, "FlipAngle")) if timing is not None else None))
        put("field_strength_t", _float(_get(ds, "MagneticFieldStrength")))
        coil = _str(_get(ds, "ReceiveCoilName"))
        if not coil:
            rc = _fg_item(ds, "MRReceiveCoilSequence")
            coil = _str(_get(rc, "ReceiveCoilName")) if rc is not None else ""
        if not coil:
            try:
                coil = _str(ds[0x0051, 0x100F].value) if (0x0051, 0x100F) in ds else ""
            except Exception:  # noqa: BLE001
                coil = ""
        put("coil", coil)
        put("bandwidth_hz_px", _float(_get(ds, "PixelBandwidth")))
        put("sequence", _str(_get(ds, "SequenceName")) or _str(_get(ds, "ScanningSequence"))
            or _str(_get(ds, "PulseSequenceName")))
    return out


def _check_image_module(ds, path: str, *, pixels: bool = False) -> tuple[str, str]:
    sop_class = _str(_get(ds, "SOPClassUID")) or _str(_get(ds.file_meta if hasattr(ds, "file_meta") else None, "MediaStorageSOPClassUID"))
    modality = _str(_get(ds, "Modality")).upper()
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise _Skip(f"{path}: DICOMDIR (media directory), files are found by content instead")
    if sop_class and sop_class not in IMAGE_SOP_CLASSES:
        try:
            from pydicom.uid import UID
            name = UID(sop_class).name
        except Exception:  # noqa: BLE001
            name = sop_class
        if modality in SUPPORTED_MODALITIES and "Secondary Capture" in name:
            raise InputError(f"{path}: secondary capture, not an original {modality} image")
        raise InputError(f"{path}: not a CT or MR image ({name}, modality {modality or 'none'})")
    if pixels:
        _check_pixel_element(ds, path)
    if modality not in SUPPORTED_MODALITIES:
        raise InputError(f"{path}: modality {modality or 'missing'} is not supported (CT or MR only)")
    spp = _get(ds, "SamplesPerPixel", 1)
    try:
        spp = int(spp)
    except (TypeError, ValueError):
        spp = 1
    if spp != 1:
        raise InputError(f"{path}: colour image (SamplesPerPixel {spp}); a phantom scan is greyscale")
    return sop_class, modality


class _Skip(Exception):
    """Not an error: a file that is deliberately passed over (DICOMDIR)."""


def _frames_of(ds, path: str) -> list[Frame]:
    """Expand a dataset into frames with geometry and rescale, single- or multi-frame."""
    rows = int(_get(ds, "Rows", 0) or 0)
    cols = int(_get(ds, "Columns", 0) or 0)
    if rows <= 0 or cols <= 0:
        raise InputError(f"{path}: missing Rows/Columns")
    try:
        nframes = int(_get(ds, "NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        nframes = 1
    if rows > MAX_FRAME_SIDE or cols > MAX_FRAME_SIDE or rows * cols * max(nframes, 1) > MAX_PIXELS:
        raise InputError(f"{path}: image claims {rows}x{cols}x{nframes} pixels, beyond the "
                         f"{MAX_FRAME_SIDE}x{MAX_FRAME_SIDE}, {MAX_PIXELS}-pixel limit")
    sop_uid = _str(_get(ds, "SOPInstanceUID"))
    instance = _get(ds, "InstanceNumber")
    try:
        instance = int(instance) if instance is not None else None
    except (TypeError, ValueError):
        instance = None
    echo = _get(ds, "EchoNumbers")
    try:
        echo = int(echo[0] if isinstance(echo, (list, tuple)) else echo) if echo is not None else None
    except (TypeError, ValueError):
        echo = None

    shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame is None:
        ps = _floats(_get(ds, "PixelSpacing"), 2) or _floats(_get(ds, "ImagerPixelSpacing"), 2)
        if ps is None or min(ps) <= 0:
            raise InputError(f"{path}: missing or invalid PixelSpacing")
        iop = _floats(_get(ds, "ImageOrientationPatient"), 6)
        ipp = _floats(_get(ds, "ImagePositionPatient"), 3)
        if iop is None:
            iop = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        if ipp is None:
            loc = _float(_get(ds, "SliceLocation"), 0.0)
            ipp = (0.0, 0.0, float(loc))
        try:
            n = _normal(iop)
        except ValueError:
            raise InputError(f"{path}: degenerate ImageOrientationPatient {iop}") from None
        slope = _float(_get(ds, "RescaleSlope"), 1.0)
        intercept = _float(_get(ds, "RescaleIntercept"), 0.0)
        _check_rescale(path, _get(ds, "RescaleSlope"), _get(ds, "RescaleIntercept"))
        if nframes > 1:
            # Old-style multi-frame (e.g. NM-like MR) without functional groups: use the
            # spacing between slices along the normal.
            step = _float(_get(ds, "SpacingBetweenSlices")) or _float(_get(ds, "SliceThickness")) or 1.0
            pos0 = float(np.dot(ipp, n))
            return [Frame(path, k, pos0 + k * step, tuple(np.add(ipp, k * step * n)), sop_uid, instance,
                          slope, intercept, rows, cols, ps, iop, echo) for k in range(nframes)]
        return [Frame(path, None, float(np.dot(ipp, n)), ipp, sop_uid, instance, slope, intercept,
                      rows, cols, ps, iop, echo)]

    frames: list[Frame] = []
    try:
        n_items = len(per_frame)
    except TypeError:
        raise InputError(f"{path}: malformed PerFrameFunctionalGroupsSequence") from None
    if n_items != nframes:
        raise InputError(f"{path}: {n_items} per-frame functional groups for {nframes} frames")

    def group(item, keyword):
        found = _seq_item(item, keyword)
        if found is None and shared is not None:
            found = _seq_item(shared, keyword)
        return found

    for k in range(nframes):
        item = per_frame[k]
        pm = group(item, "PixelMeasuresSequence")
        po = group(item, "PlaneOrientationSequence")
        pp = group(item, "PlanePositionSequence")
        pvt = group(item, "PixelValueTransformationSequence")
        ps = _floats(_get(pm, "PixelSpacing"), 2) if pm is not None else None
        if ps is None or min(ps) <= 0:
            raise InputError(f"{path}: frame {k + 1} has no PixelSpacing in its functional groups")
        iop = (_floats(_get(po, "ImageOrientationPatient"), 6) if po is not None else None) or (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        ipp = (_floats(_get(pp, "ImagePositionPatient"), 3) if pp is not None else None)
        if ipp is None:
            raise InputError(f"{path}: frame {k + 1} has no ImagePositionPatient")
        try:
            n = _normal(iop)
        except ValueError:
            raise InputError(f"{path}: frame {k + 1} has a degenerate ImageOrientationPatient") from None
        if pvt is not None:
            _check_rescale(path, _get(pvt, "RescaleSlope"), _get(pvt, "RescaleIntercept"))
            slope = _float(_get(pvt, "RescaleSlope"), 1.0)
            intercept = _float(_get(pvt, "RescaleIntercept"), 0.0)
        else:
            _check_rescale(path, _get(ds, "RescaleSlope"), _get(ds, "RescaleIntercept"))
            slope = _float(_get(ds, "RescaleSlope"), 1.0)
            intercept = _float(_get(ds, "RescaleIntercept"), 0.0)
        frames.append(Frame(path, k, float(np.dot(ipp, n)), ipp, sop_uid, instance, slope, intercept,
                            rows, cols, ps, iop, echo))
    return frames


def _check_rescale(path: str, slope: Any, intercept: Any) -> None:
    for name, value in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if value is None:
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(f"{path}: {name} {value!r} is not a number") from None
        if not math.isfinite(v) or (name == "RescaleSlope" and v == 0.0):
            raise InputError(f"{path}: {name} {value!r} would give non-finite or constant values")
        if abs(v) > MAX_RESCALE:
            raise InputError(f"{path}: {name} {value!r} is implausible (|value| > {MAX_RESCALE:g})")


@dataclass(slots=True)
class _FileInfo:
    path: str
    uid: str
    modality: str
    sop_class: str
    frames: list[Frame]
    ds: Any  # pydicom Dataset, or None once dropped
    summary: "_Summary | None" = None   # header summary, kept for the first file of each series


@dataclass(frozen=True, slots=True)
class _Summary:
    """The per-series header facts, taken from one file so its Dataset can be dropped at once
    (keeping a Dataset per series made batch indexing grow ~70 kB per series)."""

    acquired: datetime | None
    scanner: Scanner
    protocol: dict[str, Any]
    description: str
    study_uid: str
    frame_of_reference_uid: str
    image_type: tuple[str, ...]


def _summarize(ds, modality: str) -> _Summary:
    image_type = _get(ds, "ImageType") or ()
    try:
        image_type = tuple(str(v) for v in image_type) if not isinstance(image_type, str) else (image_type,)
    except TypeError:
        image_type = ()
    return _Summary(
        acquired=acquisition_datetime(ds),
        scanner=Scanner(manufacturer=_str(_get(ds, "Manufacturer")), model=_str(_get(ds, "ManufacturerModelName")),
                        station=_str(_get(ds, "StationName")), serial=_str(_get(ds, "DeviceSerialNumber"))),
        protocol=_protocol(ds, modality), description=_str(_get(ds, "SeriesDescription")),
        study_uid=_str(_get(ds, "StudyInstanceUID")), frame_of_reference_uid=_str(_get(ds, "FrameOfReferenceUID")),
        image_type=image_type)


def _check_pixel_element(ds, path: str) -> None:
    """With deferred reading, catch missing or truncated pixel data before grouping.

    A truncated copy must fail on its own rather than join (and spoil) a good series.
    """
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in ds:
            break
    else:
        size = os.path.getsize(path) if os.path.exists(path) else 0
        raise InputError(f"{path}: no pixel data (truncated file of {size} bytes, or not an image)")
    elem = ds.get_item(tag)
    length = getattr(elem, "length", None)
    tell = getattr(elem, "value_tell", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return  # encapsulated (undefined length) or already read: checked when decoded
    try:
        size = os.path.getsize(path)
    except OSError:
        return
    if tell + length > size:
        raise InputError(f"{path}: truncated: pixel data needs {tell + length} bytes, file has {size}")
    if tag == 0x7FE00010 and not _is_encapsulated(ds):
        try:
            rows, cols = int(_get(ds, "Rows", 0)), int(_get(ds, "Columns", 0))
            bits = int(_get(ds, "BitsAllocated", 16))
            frames = int(_get(ds, "NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            return
        need = (rows * cols * frames * bits + 7) // 8
        if length < need:
            raise InputError(f"{path}: pixel data holds {length} bytes, but {rows}x{cols}x{frames} "
                             f"pixels of {bits} bits need {need}")


def _is_encapsulated(ds) -> bool:
    ts = getattr(getattr(ds, "file_meta", None), "get", lambda *_: None)("TransferSyntaxUID")
    try:
        return bool(ts is not None and ts.is_compressed)
    except AttributeError:
        return False


def _describe(ds, path: str, *, pixels: bool = False) -> _FileInfo:
    try:
        sop_class, modality = _check_image_module(ds, path, pixels=pixels)
        uid = _str(_get(ds, "SeriesInstanceUID"))
        if not uid:
            raise InputError(f"{path}: no SeriesInstanceUID")
        frames = _frames_of(ds, path)
    except (InputError, _Skip):
        raise
    except Exception as exc:  # malformed header values surface as many types  # noqa: BLE001
        raise InputError(f"{path}: malformed header ({type(exc).__name__}: {_short(exc)})") from None
    return _FileInfo(path, uid, modality, sop_class, frames, ds)


def _header_from(infos: list[_FileInfo]) -> SeriesHeader:
    """Assemble and validate one series from its files' descriptions."""
    ref = infos[0]
    uid = ref.uid
    warnings: list[str] = []

    frames = [f for info in infos for f in info.frames]
    # Duplicate instances: the same SOPInstanceUID in two files.
    seen: dict[tuple[str, int | None], str] = {}
    for f in frames:
        key = (f.sop_uid, f.frame)
        if f.sop_uid and key in seen and seen[key] != f.path:
            raise SeriesError(f"{f.path}: duplicate instance of {seen[key]} (SOPInstanceUID {f.sop_uid}) "
                              f"in series {uid}; remove one copy")
        seen[key] = f.path

    # Mixed geometry.
    o0, ps0, shape0 = frames[0].orientation, frames[0].pixel_spacing, (frames[0].rows, frames[0].columns)
    for f in frames[1:]:
        if (f.rows, f.columns) != shape0:
            raise SeriesError(f"{f.path}: matrix {f.rows}x{f.columns} differs from {shape0[0]}x{shape0[1]} "
                              f"of {frames[0].path} in series {uid} (mixed series)")
        # plain float comparisons: np.allclose per frame cost more than the rest of the check
        if f.pixel_spacing != ps0 and any(abs(a - b) > SPACING_RTOL * abs(b) for a, b in zip(f.pixel_spacing, ps0)):
            raise SeriesError(f"{f.path}: pixel spacing {f.pixel_spacing} differs from {ps0} "
                              f"of {frames[0].path} in series {uid} (mixed series)")
        if f.orientation != o0 and any(abs(a - b) > ORIENTATION_ATOL for a, b in zip(f.orientation, o0)):
            raise SeriesError(f"{f.path}: orientation differs from {frames[0].path} in series {uid} (mixed series)")

    echoes = {f.echo for f in frames}
    frames.sort(key=lambda f: (f.position_mm, f.echo or 0))
    pos = np.array([f.position_mm for f in frames])
    if len(frames) > 1:
        d = np.diff(pos)
        dup = np.flatnonzero(np.abs(d) < 1e-3)
        if dup.size:
            a, b = frames[dup[0]], frames[dup[0] + 1]
            what = " (several echoes in one series)" if len(echoes) > 1 else ""
            raise SeriesError(f"{b.path}: same slice position {b.position_mm:.2f} mm as {a.path} "
                              f"in series {uid}{what}; duplicate instances")
        med = float(np.median(d))
        gaps = np.flatnonzero(d > MISSING_SLICE_FACTOR * med)
        if gaps.size:
            g = gaps[0]
            raise SeriesError(f"{frames[g + 1].path}: missing slice(s) in series {uid} between "
                              f"{pos[g]:.2f} and {pos[g + 1]:.2f} mm (gap {d[g]:.2f} mm, median spacing {med:.2f} mm)")
        if np.any(np.abs(d - med) > 0.1 * med):
            warnings.append(f"uneven slice spacing in series {uid} ({d.min():.2f}-{d.max():.2f} mm)")

    folders = sorted({os.path.dirname(i.path) for i in infos})
    if len(folders) > 1:
        warnings.append(f"series {uid} is split over {len(folders)} folders: {', '.join(folders[:3])}")

    summary = ref.summary if ref.summary is not None else _summarize(ref.ds, ref.modality)
    acquired = summary.acquired
    if acquired is not None and acquired.year < 1900:
        warnings.append(f"acquisition date {acquired.date().isoformat()} is a placeholder (anonymised); treated as unknown")
        acquired = None
    protocol = dict(summary.protocol)
    thickness = protocol.get("slice_thickness_mm")
    return SeriesHeader(
        uid=uid, modality=ref.modality, sop_class=ref.sop_class, frames=tuple(frames), scanner=summary.scanner,
        acquired=acquired, protocol=protocol,
        description=summary.description, study_uid=summary.study_uid,
        frame_of_reference_uid=summary.frame_of_reference_uid, image_type=summary.image_type,
        slice_thickness_mm=thickness, warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- public API

def scan(paths: Iterable[str | os.PathLike], *, keep_datasets: bool = False) -> tuple[ScanOutcome, dict[str, Any]]:
    """Find every DICOM file under ``paths`` and group it into series headers.

    Returns the outcome and, with ``keep_datasets``, a map path -> pydicom Dataset (pixel data
    deferred) so that :func:`read_series` need not parse the files again.
    """
    outcome = ScanOutcome()
    by_uid: dict[str, list[_FileInfo]] = defaultdict(list)
    datasets: dict[str, Any] = {}
    for path in iter_files(paths):
        try:
            if _is_sidecar(path):
                raise _Skip(f"{path}: not DICOM ({os.path.splitext(path)[1]} file), skipped")
            ds = read_dataset(path)
            info = _describe(ds, path, pixels=True)
        except _Skip as skip:
            outcome.skipped.append(FileFailure(path, str(skip).split(": ", 1)[-1]))
            continue
        except InputError as exc:
            outcome.failures.append(_failure(path, exc))
            continue
        if keep_datasets:
            datasets[path] = ds
        if not by_uid[info.uid]:
            try:
                info.summary = _summarize(ds, info.modality)
            except Exception as exc:  # noqa: BLE001 - malformed optional header values
                outcome.failures.append(FileFailure(path, f"malformed header ({type(exc).__name__}: {_short(exc)})"))
                continue
        info.ds = None            # the Dataset is not kept (memory stays flat over large trees)
        by_uid[info.uid].append(info)
    for uid, infos in by_uid.items():
        infos.sort(key=lambda i: i.path)
        ref = next(i for i in infos if i.summary is not None)
        infos.remove(ref)
        infos.insert(0, ref)
        try:
            outcome.headers.append(_header_from(infos))
        except InputError as exc:
            outcome.failures.append(_failure(infos[0].path, exc))
    outcome.headers.sort(key=lambda h: (h.acquired or datetime.min, h.uid))
    return outcome, datasets


def _failure(path: str, exc: Exception) -> FileFailure:
    msg = str(exc)
    # Messages start with the file they are about; split it off for the FileFailure.
    if ": " in msg and os.path.sep in msg.split(": ", 1)[0] or msg.startswith(path):
        where, reason = msg.split(": ", 1)
        return FileFailure(where, reason)
    return FileFailure(path, msg)


_NATIVE_LE = frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"})


def _native_view(ds) -> np.ndarray | None:
    """Read-only view of native little-endian 16-bit pixel data, or None when not that simple case.

    pydicom's ``pixel_array`` copies the buffer; the loader converts to float32 anyway, so for the
    plain case (uncompressed little endian, one sample, 16 bits allocated and stored, PS3.5 8.1.1)
    a view saves a full pass over the pixels.  Everything else goes through pydicom.
    """
    try:
        ts = str(ds.file_meta.TransferSyntaxUID)
        if ts not in _NATIVE_LE:
            return None
        bits_alloc, bits_stored = int(_get(ds, "BitsAllocated", 0)), int(_get(ds, "BitsStored", 0))
        if bits_alloc != 16 or bits_stored != 16 or int(_get(ds, "SamplesPerPixel", 1)) != 1:
            return None
        rows, cols = int(_get(ds, "Rows", 0)), int(_get(ds, "Columns", 0))
        frames = int(_get(ds, "NumberOfFrames", 1) or 1)
        signed = int(_get(ds, "PixelRepresentation", 0)) == 1
        raw = ds.PixelData
    except (AttributeError, TypeError, ValueError, KeyError):
        return None
    n = rows * cols * frames
    if rows < 1 or cols < 1 or frames < 1 or not isinstance(raw, (bytes, bytearray)) or len(raw) < 2 * n:
        return None   # odd headers (e.g. NumberOfFrames 0): let pydicom judge and report them
    arr = np.frombuffer(raw, dtype="<i2" if signed else "<u2", count=n)
    return arr.reshape((frames, rows, cols) if frames > 1 else (rows, cols))


def _decode(ds, path: str) -> np.ndarray:
    """Stored pixel values of a dataset as an array (frames, rows, cols) or (rows, cols)."""
    view = _native_view(ds)
    if view is not None:
        return view
    try:
        from pydicom.pixels import pixel_array
        arr = pixel_array(ds)
    except (NotImplementedError, RuntimeError) as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", str(ts))
        raise InputError(f"{path}: cannot decode pixel data ({name}): {_short(exc)}") from None
    except AttributeError as exc:
        raise InputError(f"{path}: no pixel data ({_short(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - decoder plugins raise arbitrary types on corrupt data
        raise InputError(f"{path}: pixel data unreadable or truncated ({type(exc).__name__}: {_short(exc)})") from None
    return arr


def read_series(header: SeriesHeader, datasets: dict[str, Any] | None = None) -> Series:
    """Read the pixels of a series, rescale them and stack them in position order."""
    frames = header.frames
    rows, cols = frames[0].rows, frames[0].columns
    volume = np.empty((len(frames), rows, cols), dtype=np.float32)
    cache: dict[str, np.ndarray] = {}
    datasets = datasets or {}
    floating = False
    for z, f in enumerate(frames):
        arr = cache.get(f.path)
        if arr is None:
            ds = datasets.pop(f.path, None) if f.frame is None else datasets.get(f.path)
            if ds is None:
                ds = read_dataset(f.path)
            if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
                raise InputError(f"{f.path}: no pixel data")
            arr = _decode(ds, f.path)
            if f.frame is not None:
                cache[f.path] = arr
        img = arr[f.frame] if f.frame is not None else arr
        floating = floating or img.dtype.kind == "f"
        if img.ndim != 2 or img.shape != (rows, cols):
            raise InputError(f"{f.path}: pixel data shape {img.shape} does not match {rows}x{cols}")
        if f.slope == 1.0:   # one pass: convert and shift together
            np.add(img, np.float32(f.intercept), out=volume[z], casting="unsafe")
        else:
            np.multiply(img, np.float32(f.slope), out=volume[z], casting="unsafe")
            volume[z] += np.float32(f.intercept)
    if floating and not np.isfinite(volume).all():   # integer pixels with finite rescale are finite
        raise InputError(f"{frames[0].path}: pixel values are not finite after rescale (series {header.uid})")
    pos = header.positions_mm
    if len(frames) > 1:
        dz = float(np.median(np.diff(pos)))
    else:
        dz = float(header.slice_thickness_mm or 0.0)
    dy, dx = frames[0].pixel_spacing
    return Series(
        uid=header.uid, modality=header.modality, volume=volume, spacing_mm=(dz, float(dy), float(dx)),
        positions_mm=pos, origin_mm=np.array([f.ipp for f in frames], dtype=np.float64),
        orientation=frames[0].orientation, scanner=header.scanner, acquired=header.acquired,
        protocol=dict(header.protocol), description=header.description, study_uid=header.study_uid,
        frame_of_reference_uid=header.frame_of_reference_uid, image_type=header.image_type,
        slice_thickness_mm=header.slice_thickness_mm, files=header.files, warnings=header.warnings,
        sop_class=header.sop_class,
    )


def iter_series(paths: Iterable[str | os.PathLike]) -> Iterator[Series | FileFailure]:
    """Load every series under ``paths``, yielding a :class:`Series` or a :class:`FileFailure`.

    One parse per file: headers are read with large elements deferred, grouped, and each
    series' pixels are decoded from the same datasets.
    """
    outcome, datasets = scan(paths, keep_datasets=True)
    yield from outcome.failures
    yield from read_each(outcome.headers, datasets)


def read_each(headers: Iterable[SeriesHeader], datasets: dict[str, Any] | None = None
              ) -> Iterator[Series | FileFailure]:
    """:func:`read_series` for each header; a series that cannot be read becomes a failure line.

    Datasets of a series (when given) are dropped once it is read, so memory stays bounded.
    """
    datasets = datasets if datasets is not None else {}
    for header in headers:
        try:
            yield read_series(header, datasets)
        except InputError as exc:
            yield _failure(header.files[0], exc)
        finally:
            for p in header.files:
                datasets.pop(p, None)


def load(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> LoadOutcome:
    """Load every series under ``paths``; bad files become failures, the rest still load."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = LoadOutcome()
    for item in iter_series(paths):
        if isinstance(item, FileFailure):
            out.failures.append(item)
        else:
            out.series.append(item)
    return out


def load_series(path: str | os.PathLike) -> Series:
    """Load exactly one series from ``path``; raise :class:`InputError` otherwise."""
    out = load([path])
    if out.failures:
        raise InputError(str(out.failures[0]))
    if not out.series:
        raise InputError(f"{os.fspath(path)}: no CT or MR image series found")
    if len(out.series) > 1:
        raise SeriesError(f"{os.fspath(path)}: {len(out.series)} series found where one was expected")
    return out.series[0]


__all__ = [
    "FileFailure", "Frame", "LoadOutcome", "ScanOutcome", "Scanner", "Series", "SeriesHeader",
    "iter_files", "iter_series", "load", "load_series", "read_dataset", "read_each", "read_series", "scan",
]

