"""DICOM Storage SCP: receive phantom series from scanners, analyse each when complete.

Built on pynetdicom (the maintained DICOM networking library; DICOM PS3.7/PS3.8).  Safety:

* files are written under ``incoming/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` only after
  both UIDs pass the DICOM UID syntax (digits and dots, at most 64 characters, PS3.5 9.1),
  so a hostile UID (``../``, an absolute path, a NUL byte) can never name a path outside
  the incoming folder — such an instance is refused with status 0xA900 and not written;
* only CT, MR, Enhanced CT/MR Image Storage and Verification are negotiated: any other
  SOP class is refused at association negotiation;
* an optional allow-list of calling AE titles is enforced at association request;
* associations are bounded: network/ACSE/DIMSE time-outs, a maximum association duration
  and a maximum number of bytes per association (beyond them the association is aborted).

A series is complete after ``quiet_s`` seconds without a new instance; it is then analysed,
stored, and any new drift alarm logged.  A second MR acquisition that pairs with an earlier one
(same scanner, study, geometry and protocol) is analysed together with it, so both gain the
NEMA two-acquisition ``snr_subtraction``.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xA900   # "Error: Data Set does not match SOP Class" family (PS3.4 B.2.3)


def valid_uid(value: object) -> bool:
    """A DICOM UID: digits and dots, no empty component, at most 64 characters (PS3.5 9.1)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and UID_RE.match(value) is not None


@dataclass(slots=True)
class ListenerConfig:
    incoming: Path
    store: Path | None
    port: int = 11112
    ae_title: str = "IQA"
    host: str = "127.0.0.1"
    allowed_callers: tuple[str, ...] = ()
    quiet_s: float = 10.0
    max_association_s: float = 600.0
    max_association_bytes: int = 2 * 1024**3
    network_timeout_s: float = 60.0
    criteria_path: str | None = None


@dataclass(slots=True)
class _AssocState:
    started: float
    bytes: int = 0


@dataclass(slots=True)
class Listener:
    """A running Storage SCP; ``start()`` returns immediately, ``stop()`` shuts down."""

    config: ListenerConfig
    on_result: Callable[[dict], None] | None = None
    on_failure: Callable[[str], None] | None = None
    _server: object | None = None
    _watcher: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_write: dict[str, float] = field(default_factory=dict)
    _assocs: dict[int, _AssocState] = field(default_factory=dict)
    processed: list[str] = field(default_factory=list)
    _pairs: object = None      # iqa.analysis.PairWaitlist, made on first use (keeps imports light)

    # ---------------------------------------------------------------- DICOM handlers
    def _on_store(self, event) -> int:
        cfg = self.config
        key = id(event.assoc)
        state = self._assocs.setdefault(key, _AssocState(time.monotonic()))
        if time.monotonic() - state.started > cfg.max_association_s:
            log.warning("association from %s exceeded %.0f s; aborting", event.assoc.requestor.ae_title,
                        cfg.max_association_s)
            event.assoc.abort()
            return STATUS_OUT_OF_RESOURCES
        try:
            ds = event.dataset
            series_uid = str(ds.get("SeriesInstanceUID", ""))
            sop_uid = str(ds.get("SOPInstanceUID", ""))
        except Exception as exc:  # noqa: BLE001 - a malformed dataset from the network
            log.warning("refused an instance that could not be decoded: %s", exc)
            return STATUS_CANNOT_UNDERSTAND
        if not (valid_uid(series_uid) and valid_uid(sop_uid)):
            log.warning("refused an instance with an invalid UID (series %r, instance %r)",
                        series_uid[:80], sop_uid[:80])
            return STATUS_CANNOT_UNDERSTAND
        data = event.encoded_dataset(include_meta=True)
        state.bytes += len(data)
        if state.bytes > cfg.max_association_bytes:
            log.warning("association exceeded %d bytes; aborting", cfg.max_association_bytes)
            event.assoc.abort()
            return STATUS_OUT_OF_RESOURCES
        folder = cfg.incoming / series_uid
        target = folder / f"{sop_uid}.dcm"
        # Defence in depth: the resolved target must stay inside the incoming folder.
        if cfg.incoming.resolve() not in target.resolve().parents:
            return STATUS_CANNOT_UNDERSTAND
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        with self._lock:
            self._last_write[series_uid] = time.monotonic()
        return STATUS_SUCCESS

    def _on_echo(self, event) -> int:
        return STATUS_SUCCESS

    def _on_release(self, event) -> None:
        self._assocs.pop(id(event.assoc), None)

    # ---------------------------------------------------------------- completion watcher
    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self.flush(older_than_s=self.config.quiet_s)

    def flush(self, older_than_s: float = 0.0) -> list[str]:
        """Analyse every series quiet for ``older_than_s`` seconds; returns their UIDs."""
        now = time.monotonic()
        with self._lock:
            ready = [uid for uid, t in self._last_write.items() if now - t >= older_than_s]
            for uid in ready:
                del self._last_write[uid]
        for uid in ready:
            self._process(uid)
        return ready

    def _process(self, series_uid: str) -> None:
        from iqa.analysis import PairWaitlist, analyze_paths
        from iqa.batch import raise_alarms
        from iqa.criteria import Criteria
        from iqa.errors import IqaError

        folder = self.config.incoming / series_uid
        if self._pairs is None:
            self._pairs = PairWaitlist()
        partner = self._pairs.partner(folder)      # the first of a NEMA pair, analysed alone earlier
        folders = [partner, folder] if partner else [folder]
        try:
            outcome = analyze_paths(folders, criteria=Criteria.default(self.config.criteria_path))
        except IqaError as exc:
            self._fail(f"{folder}: {exc}")
            return
        for f in outcome.failures:
            self._fail(str(f))
        if outcome.results and self.config.store is not None:
            from iqa.store import Store
            try:
                with Store(self.config.store) as store:
                    store.add_results(outcome.results)   # the partner gains its snr_subtraction
                    new = raise_alarms(store)
            except IqaError as exc:
                self._fail(f"{folder}: {exc}")
                return
            if new:
                log.warning("series %s: %d new drift alarm(s) raised", series_uid, new)
        for r in outcome.results:
            log.info("series %s analysed: %s %s", series_uid, r.phantom, r.status)
            if self.on_result:
                self.on_result(r.to_dict(curves=False))
        self.processed.append(series_uid)

    def _fail(self, message: str) -> None:
        log.error("%s", message)
        if self.on_failure:
            self.on_failure(message)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> "Listener":
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import (
            CTImageStorage,
            EnhancedCTImageStorage,
            EnhancedMRImageStorage,
            MRImageStorage,
            Verification,
        )

        cfg = self.config
        cfg.incoming.mkdir(parents=True, exist_ok=True)
        ae = AE(ae_title=cfg.ae_title)
        ae.network_timeout = cfg.network_timeout_s
        ae.acse_timeout = min(30.0, cfg.network_timeout_s)
        ae.dimse_timeout = cfg.network_timeout_s
        ae.maximum_associations = 8
        if cfg.allowed_callers:
            ae.require_calling_aet = list(cfg.allowed_callers)
        for cx in (CTImageStorage, MRImageStorage, EnhancedCTImageStorage, EnhancedMRImageStorage):
            ae.add_supported_context(cx)
        ae.add_supported_context(Verification)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_RELEASED, self._on_release), (evt.EVT_ABORTED, self._on_release)]
        self._server = ae.start_server((cfg.host, cfg.port), block=False, evt_handlers=handlers)
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="iqa-listen-watch", daemon=True)
        self._watcher.start()
        log.info("listening as %s on %s:%d, incoming %s", cfg.ae_title, cfg.host, cfg.port, cfg.incoming)
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else self.config.port

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.flush(0.0)

    def __enter__(self) -> "Listener":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
