"""The trend store: an embedded SQLite history of analysed phantom series (stdlib ``sqlite3``).

What is stored, and what never is
---------------------------------
* ``scanners``: identity from the General Equipment module (manufacturer, model, station,
  serial) keyed like :attr:`iqa.dicom.Scanner.key` (``model/serial``).
* ``series``: one row per SeriesInstanceUID: scanner, phantom, protocol key and protocol JSON,
  acquisition date-time, modality and the *number* of files (never their paths: an export
  folder is often named after the patient).
* ``results``: one row per (series, metric, iqa version): value, unit, status, criterion,
  limits JSON.  Re-analysis with a newer iqa version is kept beside the old row; the newest
  version is flagged ``current`` and is the only one trends read.
* ``events`` (pm, calibration, tube, coil, software, phantom) restart baselines; ``alarms``
  keeps every alarm ever raised, once.

Nothing from the DICOM Patient / Study modules is stored: a result carries no patient fields,
and :meth:`Store.add_result` copies only the whitelisted fields above (protocol keys naming a
patient are dropped as well).

Trend series are keyed by (scanner, phantom, protocol key, metric) in the ``streams`` table; a
protocol change (kVp, kernel, slice thickness, TR/TE, coil, field strength) is a new stream,
not drift.  :func:`protocol_key` rounds values to 3 significant figures so that a TR stored as
499.9998 ms is the same protocol as 500 ms.

Concurrency and failure
-----------------------
WAL journal (readers never block the writer), foreign keys on, a busy timeout *and* a retry
loop around ``BEGIN IMMEDIATE`` so that several writer processes (``iqa batch`` workers, the
listener) queue instead of failing with "database is locked".  Every write is one transaction;
a read-only file, a full disk or a foreign schema raise :class:`~iqa.errors.StoreError` naming
the file and what to try, and leave nothing half-written.

Schema changes are named migrations recorded in ``schema_migrations`` (the sqlite-utils
pattern); a store written by a newer iqa is refused rather than guessed at.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import random
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from iqa.errors import StoreError

log = logging.getLogger(__name__)

#: Event kinds that restart a baseline (``iqa event add --kind``).
EVENT_KINDS = ("pm", "calibration", "tube", "coil", "software", "phantom")
#: Protocol fields that define a trend series, per modality (keys of ``Series.protocol``).
PROTOCOL_FIELDS = {
    "CT": ("kvp", "kernel", "slice_thickness_mm"),
    "MR": ("field_strength_t", "coil", "tr_ms", "te_ms", "slice_thickness_mm"),
}
#: Significant figures kept when a protocol number enters the key (Philips TR 499.9998 -> 500).
PROTOCOL_SIG_FIGS = 3
#: SQLite's own wait for a lock (ms) before it reports "database is locked" to us.
BUSY_TIMEOUT_MS = 5_000
#: Our retry budget (s) on top of the busy timeout, with jittered back-off.
LOCK_RETRY_S = 120.0

# Named migrations, applied in order and recorded; never edit one that has shipped, add a new one.
MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("0001_initial", """
CREATE TABLE scanners (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,                 -- iqa.dicom.Scanner.key, "model/serial"
    manufacturer TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '',
    station TEXT NOT NULL DEFAULT '',
    serial TEXT NOT NULL DEFAULT '',
    modality TEXT
);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,                 -- SeriesInstanceUID
    scanner_id INTEGER NOT NULL REFERENCES scanners(id),
    phantom TEXT NOT NULL,
    protocol_key TEXT NOT NULL,
    protocol TEXT NOT NULL,                   -- JSON, as analysed
    acquired TEXT,                            -- ISO 8601 date-time, NULL when the DICOM has none
    modality TEXT NOT NULL,
    n_files INTEGER NOT NULL DEFAULT 0,
    stored_at TEXT NOT NULL
);
CREATE TABLE streams (                        -- one trend series
    id INTEGER PRIMARY KEY,
    scanner_id INTEGER NOT NULL REFERENCES scanners(id),
    phantom TEXT NOT NULL,
    protocol_key TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    UNIQUE (scanner_id, phantom, protocol_key, metric)
);
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    stream_id INTEGER NOT NULL REFERENCES streams(id),
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    unit TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('pass', 'warn', 'fail', 'info')),
    criterion TEXT,
    limits TEXT NOT NULL DEFAULT '{}',        -- JSON {"tolerance": [lo, hi], "action": [lo, hi]}
    iqa_version TEXT NOT NULL,
    version_rank TEXT NOT NULL,               -- sortable form of iqa_version
    day INTEGER,                              -- proleptic Gregorian ordinal of the acquisition date
    acquired TEXT,                            -- copy of series.acquired, for ordered scans
    current INTEGER NOT NULL DEFAULT 1,       -- 1 for the newest iqa version of (series, metric)
    stored_at TEXT NOT NULL,
    UNIQUE (series_id, metric, iqa_version)
);
-- The trend read: one ordered scan of the current rows, covered by this index.
CREATE INDEX results_trend ON results (stream_id, acquired, day, value) WHERE current = 1 AND day IS NOT NULL;
CREATE INDEX series_scanner ON series (scanner_id, acquired);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    scanner_id INTEGER NOT NULL REFERENCES scanners(id),
    kind TEXT NOT NULL CHECK (kind IN ('pm', 'calibration', 'tube', 'coil', 'software', 'phantom')),
    date TEXT NOT NULL,                       -- ISO date
    note TEXT NOT NULL DEFAULT '',
    UNIQUE (scanner_id, kind, date, note)
);
CREATE TABLE alarms (
    id INTEGER PRIMARY KEY,
    scanner_id INTEGER NOT NULL REFERENCES scanners(id),
    phantom TEXT NOT NULL,
    protocol_key TEXT NOT NULL,
    metric TEXT NOT NULL,
    date TEXT NOT NULL,
    rule TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    first_seen TEXT NOT NULL,
    UNIQUE (scanner_id, phantom, protocol_key, metric, date, rule)
);
"""),
    ("0002_stream_protocol", """
-- The protocol (JSON) and modality of each trend series, so trends need not scan the series table.
ALTER TABLE streams ADD COLUMN modality TEXT NOT NULL DEFAULT '';
ALTER TABLE streams ADD COLUMN protocol TEXT NOT NULL DEFAULT '{}';
UPDATE streams SET
    modality = COALESCE((SELECT s.modality FROM series s WHERE s.scanner_id = streams.scanner_id
                         AND s.phantom = streams.phantom AND s.protocol_key = streams.protocol_key
                         ORDER BY s.acquired DESC LIMIT 1), ''),
    protocol = COALESCE((SELECT s.protocol FROM series s WHERE s.scanner_id = streams.scanner_id
                         AND s.phantom = streams.phantom AND s.protocol_key = streams.protocol_key
                         ORDER BY s.acquired DESC LIMIT 1), '{}');
-- "current" in the index too, so the trend scan never touches the table (a covering index).
DROP INDEX results_trend;
CREATE INDEX results_trend ON results (stream_id, acquired, day, value, current) WHERE current = 1 AND day IS NOT NULL;
"""),
    ("0003_series_cache", """
-- Each trend series' current (day, value) arrays as blobs, valid while streams.version is unchanged:
-- iqa trend then reads one row per series instead of every result.
ALTER TABLE streams ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE stream_cache (
    stream_id INTEGER PRIMARY KEY REFERENCES streams(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,                 -- streams.version the arrays were read at
    n INTEGER NOT NULL,
    days BLOB NOT NULL,                       -- int32 ordinals, native little-endian
    vals BLOB NOT NULL                        -- float64
);
"""),
)


# --------------------------------------------------------------------------- keys

def _num(x: float, sig: int = PROTOCOL_SIG_FIGS) -> str:
    """A number rounded to ``sig`` significant figures, printed without exponent or trailing zeros."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    r = round(x, sig - 1 - math.floor(math.log10(abs(x))))
    if r == int(r):
        return str(int(r))
    return f"{r:.10f}".rstrip("0").rstrip(".")


def protocol_key(modality: str, protocol: Mapping[str, Any]) -> str:
    """Stable text key of the protocol fields that define a trend series.

    ``kvp=120 kernel=STANDARD slice_thickness_mm=5`` (CT) or
    ``field_strength_t=1.5 coil=HEAD tr_ms=500 te_ms=20 slice_thickness_mm=5`` (MR).
    Numbers are rounded to :data:`PROTOCOL_SIG_FIGS` significant figures (TR 499.9998 ms and
    500 ms are one protocol); text is stripped.  Absent fields are left out.
    """
    parts = []
    for name in PROTOCOL_FIELDS.get(modality.upper(), ()):
        v = protocol.get(name)
        if v is None or v == "":
            continue
        if isinstance(v, bool):
            v = str(v)
        if isinstance(v, (int, float)):
            parts.append(f"{name}={_num(float(v))}")
        else:
            text = " ".join(str(v).split())
            if text:
                parts.append(f"{name}={text}")
    return " ".join(parts) or "-"


def scanner_key(scanner: Mapping[str, str]) -> str:
    """:attr:`iqa.dicom.Scanner.key` of a scanner dict (``model/serial``, station without serial)."""
    from iqa.dicom import Scanner
    return Scanner(**{k: str(scanner.get(k) or "").strip()
                      for k in ("manufacturer", "model", "station", "serial")}).key


def version_rank(version: str) -> str:
    """Sortable text for an iqa version: release numbers zero-padded, pre-releases before finals."""
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)(.*)", version or "")
    if not m:
        return "~" + (version or "")
    nums = [int(p) for p in m.group(1).split(".")][:4]
    nums += [0] * (4 - len(nums))
    suffix = m.group(2).strip().lstrip(".-+")
    return ".".join(f"{n:06d}" for n in nums) + (f"-{suffix}" if suffix else "~")


def _safe_protocol(protocol: Mapping[str, Any]) -> dict[str, Any]:
    """Protocol JSON to store: plain scalars only, and nothing that names a patient."""
    out: dict[str, Any] = {}
    for k, v in protocol.items():
        k = str(k)
        if "patient" in k.lower():
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        elif hasattr(v, "item"):          # numpy scalar
            out[k] = v.item()
    return out


def _day(acquired: str | None) -> int | None:
    if not acquired:
        return None
    try:
        return dt.date.fromisoformat(str(acquired)[:10]).toordinal()
    except ValueError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- store

@dataclass(frozen=True, slots=True)
class _Prepared:
    """One validated result, ready to write (:meth:`Store._prepare` -> :meth:`Store._insert`)."""

    uid: str
    scanner: dict[str, str]
    skey: str
    modality: str
    phantom: str
    pkey: str
    protocol: dict[str, Any]
    acquired: str | None
    day: int | None
    version: str
    rank: str
    rows: list[tuple]        # (metric, value, unit, status, criterion, limits JSON)
    n_files: int


class Store:
    """An open trend store (a context manager).  ``Store(path)`` creates and migrates it.

    Parameters
    ----------
    path : the SQLite file (created, with its folder's permission, when absent).
    readonly : open with ``mode=ro``: any write raises :class:`StoreError`.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False):
        self.path = os.fspath(path)
        self.readonly = readonly
        try:
            if readonly:
                if not os.path.exists(self.path):
                    raise StoreError(f"{self.path}: no such trend store; create one with iqa batch or iqa analyze --store")
                uri = "file:" + _uri_path(os.path.abspath(self.path)) + "?mode=ro"
                self._con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                                            isolation_level=None, check_same_thread=False)
            else:
                folder = os.path.dirname(os.path.abspath(self.path))
                if not os.path.isdir(folder):
                    raise StoreError(f"{self.path}: folder {folder} does not exist; create it first")
                self._con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                            isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, "open") from None
        try:
            self._con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._con.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._retry(lambda: self._con.execute("PRAGMA journal_mode = WAL"))
                self._con.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except StoreError:
            self._con.close()
            raise
        except sqlite3.Error as exc:
            self._con.close()
            raise self._error(exc, "open") from None

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        con, self._con = getattr(self, "_con", None), None
        if con is not None:
            con.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The open connection, for read queries (``iqa.trend``, ``iqa.report``, benchmarks)."""
        if self._con is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._con

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        text = str(exc)
        low = text.lower()
        if "readonly" in low or "read-only" in low or "read only" in low:
            hint = "the store is read-only (file or folder permissions, read-only mount); use a writable copy"
        elif "full" in low or "disk i/o" in low or "too large" in low:
            hint = "the disk is full (or a file-size limit was hit); free space and retry, nothing was stored"
        elif "locked" in low or "busy" in low:
            hint = f"still locked by another process after {LOCK_RETRY_S:.0f} s; is a batch stuck?"
        elif "not a database" in low or "malformed" in low:
            hint = "not an iqa trend store (or a corrupted one); give another --store path"
        elif "unable to open" in low:
            hint = "cannot open the file; check that the folder exists and is writable"
        else:
            hint = "SQLite error"
        return StoreError(f"{self.path}: cannot {doing}: {hint} ({text})")

    def _retry(self, fn, patience_s: float = LOCK_RETRY_S):
        """Run ``fn`` retrying while SQLite says locked/busy, up to ``patience_s``."""
        deadline = time.monotonic() + patience_s
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                low = str(exc).lower()
                if ("locked" not in low and "busy" not in low) or time.monotonic() > deadline:
                    raise
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    @contextmanager
    def _write(self, doing: str, patience_s: float = LOCK_RETRY_S) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), retried on lock, rolled back on any error."""
        if self.readonly:
            raise StoreError(f"{self.path}: cannot {doing}: the store was opened read-only")
        con = self.connection
        try:
            self._retry(lambda: con.execute("BEGIN IMMEDIATE"), patience_s)
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from None
        try:
            yield con
            self._retry(lambda: con.execute("COMMIT"))
        except sqlite3.Error as exc:
            _rollback(con)
            raise self._error(exc, doing) from None
        except BaseException:
            _rollback(con)
            raise

    def _migrate(self) -> None:
        con = self._con
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "schema_migrations" in tables:
            applied = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY id")]
        elif tables:
            raise StoreError(f"{self.path}: an SQLite database but not an iqa trend store "
                             f"(tables {', '.join(sorted(tables))}); give another --store path")
        else:
            applied = []
        known = [name for name, _ in MIGRATIONS]
        unknown = [a for a in applied if a not in known]
        if unknown:
            raise StoreError(f"{self.path}: written by a newer iqa (migrations {', '.join(unknown)}); "
                             f"upgrade iqa to read it")
        todo = [(n, sql) for n, sql in MIGRATIONS if n not in applied]
        if not todo:
            return
        if self.readonly:
            raise StoreError(f"{self.path}: the store needs migrating ({todo[0][0]}) but is opened read-only")
        with self._write("migrate the store"):
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                        "id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, applied_at TEXT NOT NULL)")
            # Re-read inside the write lock: another process may have migrated meanwhile.
            applied = {r[0] for r in con.execute("SELECT name FROM schema_migrations")}
            for name, sql in todo:
                if name in applied:
                    continue
                for stmt in _statements(sql):
                    con.execute(stmt)
                con.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)", (name, _now()))
                log.info("%s: applied migration %s", self.path, name)

    def migrations(self) -> list[tuple[str, str]]:
        """Applied migrations as (name, applied_at), oldest first."""
        return [tuple(r) for r in self.connection.execute(
            "SELECT name, applied_at FROM schema_migrations ORDER BY id")]

    # ------------------------------------------------------------------ writing

    def add_result(self, result: Any) -> bool:
        """Record one analysed series (an :class:`iqa.result.Result` or its dict); True if anything new.

        Idempotent: the same series with the same iqa version changes nothing.  A newer iqa
        version is stored beside the old rows and becomes the ``current`` one for trends.
        One transaction per series: a failure stores nothing of it.
        """
        return self.add_results([result]) > 0

    def add_results(self, results: Sequence[Any]) -> int:
        """Record several analysed series in one transaction; returns how many changed the store.

        All or nothing: a paired MR acquisition and its partner (whose ``snr_subtraction`` was
        measured together) are stored together, so a crash never leaves one of a pair behind
        to be re-paired differently on the rerun.  Each series is validated before anything is
        written.
        """
        prepared = [self._prepare(r) for r in results]
        if not prepared:
            return 0
        uids = ", ".join(p.uid for p in prepared)
        with self._write(f"store series {uids}") as con:
            return sum(self._insert(con, p) for p in prepared)

    def _prepare(self, result: Any) -> "_Prepared":
        """Validate one result and turn it into the values :meth:`_insert` writes."""
        d = result.to_dict(curves=False) if hasattr(result, "to_dict") else dict(result)
        try:
            uid = str(d["series_uid"])
            modality = str(d.get("modality") or "").upper()
            phantom = str(d["phantom"])
            metrics = dict(d.get("metrics") or {})
        except (KeyError, TypeError) as exc:
            raise StoreError(f"{self.path}: cannot store a result without {exc}") from None
        if not uid:
            raise StoreError(f"{self.path}: cannot store a result without a SeriesInstanceUID")
        scanner = {k: str((d.get("scanner") or {}).get(k) or "").strip()
                   for k in ("manufacturer", "model", "station", "serial")}
        skey = scanner_key(scanner)
        protocol = _safe_protocol(dict(d.get("protocol") or {}))
        pkey = protocol_key(modality, protocol)
        acquired = d.get("acquired") or None
        if hasattr(acquired, "isoformat"):
            acquired = acquired.isoformat(timespec="seconds")
        day = _day(acquired)
        version = str(d.get("iqa_version") or "")
        if not version:
            from iqa._version import __version__
            version = __version__
        rank = version_rank(version)
        rows = []
        for name, m in metrics.items():
            get = m.get if isinstance(m, Mapping) else (lambda k, default=None, _m=m: getattr(_m, k, default))
            try:
                value = float(get("value"))
                limits = json.dumps(get("limits", {}) or {}, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise StoreError(f"{self.path}: series {uid}, metric {name}: not storable ({exc}); "
                                 f"values and limits must be finite numbers") from None
            if not math.isfinite(value):
                continue
            rows.append((str(name), value, str(get("unit", "") or ""), str(get("status", "info") or "info"),
                         get("criterion", None), limits))
        return _Prepared(uid, scanner, skey, modality, phantom, pkey, protocol, acquired, day, version, rank,
                         rows, len(d.get("files") or ()))

    def _insert(self, con: sqlite3.Connection, p: "_Prepared") -> bool:
        """Write one prepared series inside the caller's transaction; True if anything new."""
        uid, scanner, skey, modality, phantom, pkey = p.uid, p.scanner, p.skey, p.modality, p.phantom, p.pkey
        protocol, acquired, day, version, rank, rows = p.protocol, p.acquired, p.day, p.version, p.rank, p.rows
        now = _now()
        sid = self._scanner_id(con, skey, scanner, modality)
        row = con.execute("SELECT id FROM series WHERE uid = ?", (uid,)).fetchone()
        new = False
        if row is None:
            cur = con.execute(
                "INSERT INTO series (uid, scanner_id, phantom, protocol_key, protocol, acquired, modality, "
                "n_files, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uid, sid, phantom, pkey, json.dumps(protocol, sort_keys=True, allow_nan=False),
                 acquired, modality, p.n_files, now))
            series_id, new = cur.lastrowid, True
        else:
            series_id = row[0]
            # The series is keyed on its first analysis; a later one may not move it.
            srow = con.execute("SELECT scanner_id, phantom, protocol_key, acquired, modality, protocol "
                               "FROM series WHERE id = ?", (series_id,)).fetchone()
            sid, phantom, pkey, acquired, modality, ptext = srow
            protocol = json.loads(ptext)
            day = _day(acquired)
        ptext = json.dumps(protocol, sort_keys=True, allow_nan=False)
        touched = False
        changed: list[int] = []
        for name, value, unit, status, criterion, limits in rows:
            stream = self._stream_id(con, sid, phantom, pkey, name, unit, modality, ptext)
            cur = con.execute(
                "INSERT OR IGNORE INTO results (series_id, stream_id, metric, value, unit, status, criterion, "
                "limits, iqa_version, version_rank, day, acquired, current, stored_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (series_id, stream, name, value, unit, status, criterion, limits, version, rank,
                 day, acquired, now))
            if cur.rowcount > 0:
                touched = True
                changed.append(stream)
        if touched:
            con.executemany("UPDATE streams SET version = version + 1 WHERE id = ?", [(c,) for c in changed])
            con.execute(
                "UPDATE results SET current = (version_rank = (SELECT MAX(r2.version_rank) FROM results r2 "
                "WHERE r2.series_id = results.series_id AND r2.metric = results.metric)) WHERE series_id = ?",
                (series_id,))
        return new or touched

    @staticmethod
    def _scanner_id(con: sqlite3.Connection, key: str, scanner: Mapping[str, str], modality: str | None) -> int:
        row = con.execute("SELECT id, manufacturer, model, station, serial, modality FROM scanners WHERE key = ?",
                          (key,)).fetchone()
        if row is not None:
            same = tuple(row[1:5]) == tuple(scanner.get(k, "") for k in ("manufacturer", "model", "station", "serial"))
            if any(scanner.values()) and not (same and (row[5] == modality or not modality)):
                con.execute("UPDATE scanners SET manufacturer = ?, model = ?, station = ?, serial = ?, "
                            "modality = COALESCE(?, modality) WHERE id = ?",
                            (scanner.get("manufacturer", ""), scanner.get("model", ""), scanner.get("station", ""),
                             scanner.get("serial", ""), modality or None, row[0]))
            return row[0]
        cur = con.execute("INSERT INTO scanners (key, manufacturer, model, station, serial, modality) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          (key, scanner.get("manufacturer", ""), scanner.get("model", ""),
                           scanner.get("station", ""), scanner.get("serial", ""), modality or None))
        return cur.lastrowid

    @staticmethod
    def _stream_id(con: sqlite3.Connection, scanner_id: int, phantom: str, pkey: str, metric: str,
                   unit: str, modality: str, protocol: str) -> int:
        row = con.execute("SELECT id, unit, protocol FROM streams WHERE scanner_id = ? AND phantom = ? "
                          "AND protocol_key = ? AND metric = ?", (scanner_id, phantom, pkey, metric)).fetchone()
        if row is not None:
            if (unit and row[1] != unit) or row[2] != protocol:
                con.execute("UPDATE streams SET unit = ?, modality = ?, protocol = ? WHERE id = ?",
                            (unit or row[1], modality, protocol, row[0]))
            return row[0]
        return con.execute("INSERT INTO streams (scanner_id, phantom, protocol_key, metric, unit, modality, protocol) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (scanner_id, phantom, pkey, metric, unit, modality, protocol)).lastrowid

    def has_series(self, series_uid: str, iqa_version: str | None = None) -> bool:
        """Whether the series is stored (with results of ``iqa_version``, when given)."""
        con = self.connection
        if iqa_version is None:
            row = con.execute("SELECT 1 FROM series WHERE uid = ?", (series_uid,)).fetchone()
        else:
            row = con.execute("SELECT 1 FROM series s JOIN results r ON r.series_id = s.id "
                              "WHERE s.uid = ? AND r.iqa_version = ? LIMIT 1", (series_uid, iqa_version)).fetchone()
        return row is not None

    def add_event(self, scanner: str, kind: str, date: dt.date, note: str = "") -> None:
        """Record a service event that restarts the scanner's baselines (idempotent).

        ``scanner`` is a scanner key as shown by ``iqa trend`` (``model/serial``); an unknown
        key is refused with the known ones listed, so a typo does not start a phantom scanner.
        """
        if kind not in EVENT_KINDS:
            raise StoreError(f"{self.path}: event kind {kind!r} unknown; choose one of {', '.join(EVENT_KINDS)}")
        if isinstance(date, dt.datetime):
            date = date.date()
        if not isinstance(date, dt.date):
            try:
                date = dt.date.fromisoformat(str(date))
            except ValueError:
                raise StoreError(f"{self.path}: event date {date!r} is not YYYY-MM-DD") from None
        with self._write(f"add a {kind} event") as con:
            row = con.execute("SELECT id FROM scanners WHERE key = ?", (scanner,)).fetchone()
            if row is None:
                known = [r[0] for r in con.execute("SELECT key FROM scanners ORDER BY key")]
                raise StoreError(f"{self.path}: no scanner {scanner!r} in the store; known: "
                                 f"{', '.join(known) if known else 'none yet (store a result first)'}")
            con.execute("INSERT OR IGNORE INTO events (scanner_id, kind, date, note) VALUES (?, ?, ?, ?)",
                        (row[0], kind, date.isoformat(), note or ""))

    def record_alarms(self, trends: Sequence[Mapping[str, Any]]) -> int:
        """Keep every alarm of the given trend objects once; return how many were new."""
        rows = []
        for t in trends:
            for a in t.get("alarms") or ():
                rows.append((t["scanner"], t["phantom"], t["protocol"], t["metric"],
                             str(a["date"]), str(a["rule"]), str(a.get("detail", ""))))
        if not rows:
            return 0
        new = 0
        now = _now()
        with self._write("record alarms") as con:
            ids = dict(con.execute("SELECT key, id FROM scanners"))
            for skey, phantom, pkey, metric, date, rule, detail in rows:
                sid = ids.get(skey)
                if sid is None:
                    raise StoreError(f"{self.path}: alarm for unknown scanner {skey!r}")
                cur = con.execute("INSERT OR IGNORE INTO alarms (scanner_id, phantom, protocol_key, metric, date, "
                                  "rule, detail, first_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                  (sid, phantom, pkey, metric, date, rule, detail, now))
                new += cur.rowcount
        return new

    # ------------------------------------------------------------------ reading

    def read_series(self, stream_ids: Sequence[int] | None = None) -> dict[int, tuple[Any, Any]]:
        """Current ``(days, values)`` of trend series (all, or these ``streams.id``), oldest first.

        ``days`` are int64 proleptic Gregorian ordinals, ``values`` float64.  Series whose cached
        arrays are still valid (``stream_cache.version == streams.version``) come from one blob
        each; the others from one ordered scan of the covering index ``results_trend``, after
        which their cache is refreshed when the store is writable (best effort: a read-only or
        busy store is simply read the slow way).  Versions and data are read in one snapshot, so
        a result stored meanwhile invalidates what was cached, never hides behind it.
        """
        import numpy as np

        con = self.connection
        out: dict[int, tuple[Any, Any]] = {}
        fresh: list[tuple[int, int, Any, Any]] = []
        con.execute("BEGIN")          # one read snapshot (WAL: writers carry on)
        try:
            sel = "SELECT st.id, st.version, c.version, c.days, c.vals FROM streams st " \
                  "LEFT JOIN stream_cache c ON c.stream_id = st.id"
            wanted = None if stream_ids is None else set(int(i) for i in stream_ids)
            args: list[int] = []
            if wanted is not None and len(wanted) <= 500:
                sel += f" WHERE st.id IN ({', '.join('?' * len(wanted))})"
                args = sorted(wanted)
            versions: dict[int, int] = {}
            for sid, ver, cver, days, vals in con.execute(sel, args):
                if wanted is not None and sid not in wanted:
                    continue
                if cver is not None and cver == ver:
                    out[sid] = (np.frombuffer(days, dtype="<i4").astype(np.int64), np.frombuffer(vals, dtype="<f8"))
                else:
                    versions[sid] = ver
            if versions:
                for sid, (days, vals) in _scan(con, list(versions) if len(versions) <= 500 else None).items():
                    if sid in versions:
                        out[sid] = (days, vals)
                        fresh.append((sid, versions[sid], days, vals))
                # series with no dated results: cache them empty too
                for sid in versions.keys() - out.keys():
                    fresh.append((sid, versions[sid], np.empty(0, np.int64), np.empty(0)))
        finally:
            _rollback(con)
        if fresh and not self.readonly:
            try:
                with self._write("cache trend series", patience_s=2.0) as w:
                    w.executemany("INSERT OR REPLACE INTO stream_cache (stream_id, version, n, days, vals) "
                                  "VALUES (?, ?, ?, ?, ?)",
                                  [(sid, ver, int(d.size), d.astype("<i4").tobytes(), v.astype("<f8").tobytes())
                                   for sid, ver, d, v in fresh])
            except StoreError as exc:
                log.debug("trend cache not written: %s", exc)
        return out

    def scanners(self) -> list[dict[str, Any]]:
        cols = ("key", "manufacturer", "model", "station", "serial", "modality")
        return [dict(zip(cols, r)) for r in self.connection.execute(
            f"SELECT {', '.join(cols)} FROM scanners ORDER BY key")]

    def events(self, scanner: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT s.key, e.kind, e.date, e.note FROM events e JOIN scanners s ON s.id = e.scanner_id"
               + (" WHERE s.key = ?" if scanner else "") + " ORDER BY s.key, e.date, e.id")
        return [{"scanner": k, "kind": kind, "date": date, "note": note}
                for k, kind, date, note in self.connection.execute(sql, (scanner,) if scanner else ())]

    def alarms(self, scanner: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT s.key, a.phantom, a.protocol_key, a.metric, a.date, a.rule, a.detail FROM alarms a "
               "JOIN scanners s ON s.id = a.scanner_id" + (" WHERE s.key = ?" if scanner else "")
               + " ORDER BY s.key, a.date, a.id")
        cols = ("scanner", "phantom", "protocol", "metric", "date", "rule", "detail")
        return [dict(zip(cols, r)) for r in self.connection.execute(sql, (scanner,) if scanner else ())]

    def counts(self) -> dict[str, int]:
        """Row count of every table (tests, diagnostics)."""
        con = self.connection
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("scanners", "series", "streams", "results", "events", "alarms")}


def _scan(con: sqlite3.Connection, stream_ids: Sequence[int] | None) -> dict[int, tuple[Any, Any]]:
    """(days, values) per series from one ordered scan of the covering index ``results_trend``."""
    import numpy as np

    sql = ("SELECT stream_id, day, value FROM results INDEXED BY results_trend "
           "WHERE current = 1 AND day IS NOT NULL")
    args: Sequence[int] = ()
    if stream_ids is not None:
        sql += f" AND stream_id IN ({', '.join('?' * len(stream_ids))})"
        args = list(stream_ids)
    sql += " ORDER BY stream_id, acquired"
    # np.fromiter consumes the cursor row by row: no list of a million tuples in between.
    rec = np.fromiter(con.execute(sql, args),
                      dtype=[("stream", np.int64), ("day", np.int64), ("value", np.float64)])
    if rec.size == 0:
        return {}
    sid, days, values = rec["stream"], rec["day"], rec["value"]
    cuts = np.flatnonzero(np.diff(sid)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [sid.size]))
    return {int(sid[a]): (days[a:b].copy(), values[a:b].copy()) for a, b in zip(starts, ends)}


def _rollback(con: sqlite3.Connection) -> None:
    try:
        con.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (no semicolons inside our literals or comments)."""
    lines = [ln.split("--", 1)[0] for ln in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _uri_path(path: str) -> str:
    from urllib.parse import quote
    return quote(path.replace(os.sep, "/"), safe="/:")
