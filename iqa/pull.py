"""Pull phantom series from an Orthanc server over its REST API and analyse them into the store.

Uses only the stdlib HTTP client (one small, well-documented API — Orthanc Book, "REST API
of the Orthanc core": ``POST /tools/find``, ``GET /series/{id}``, ``GET /instances/{id}/file``),
so no extra dependency is needed.  Series already in the store are not downloaded again.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from iqa.dicom import FileFailure
from iqa.errors import IqaError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PullSummary:
    found: int = 0
    analyzed: int = 0
    skipped: int = 0
    failures: list[FileFailure] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.found} series matched on Orthanc: {self.analyzed} analysed, {self.skipped} already stored, "
                f"{len(self.failures)} failed")


class Orthanc:
    """Minimal Orthanc REST client."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None, timeout_s: float = 30.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise IqaError(f"Orthanc URL must be http(s)://host:port, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = {"Accept": "application/json"}
        if user:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"

    def _request(self, method: str, path: str, body: Any = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(self.headers))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise IqaError(f"Orthanc {method} {path}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise IqaError(f"cannot reach Orthanc at {self.url}: {reason}") from None

    def json(self, method: str, path: str, body: Any = None) -> Any:
        return json.loads(self._request(method, path, body) or b"null")

    def find_series(self, *, since: date | None = None, until: date | None = None,
                    modalities: tuple[str, ...] = ("CT", "MR")) -> list[dict[str, Any]]:
        """Series (expanded) whose study date lies in [since, until] and modality is CT or MR."""
        query: dict[str, str] = {"Modality": "\\".join(modalities)}
        if since or until:
            query["StudyDate"] = f"{since.strftime('%Y%m%d') if since else ''}-{until.strftime('%Y%m%d') if until else ''}"
        return self.json("POST", "/tools/find", {"Level": "Series", "Query": query, "Expand": True})

    def study_date(self, study_id: str) -> str:
        return self.json("GET", f"/studies/{study_id}").get("MainDicomTags", {}).get("StudyDate", "")

    def download_series(self, series: dict[str, Any], folder: Path) -> list[Path]:
        out = []
        folder.mkdir(parents=True, exist_ok=True)
        for k, inst in enumerate(series.get("Instances", [])):
            path = folder / f"{k:05d}.dcm"
            path.write_bytes(self._request("GET", f"/instances/{inst}/file"))
            out.append(path)
        return out


def pull(url: str, store_path: str | Path, *, since: date | None = None, until: date | None = None,
         description: str | None = None, station: str | None = None, user: str | None = None,
         password: str | None = None, criteria_path: str | None = None) -> PullSummary:
    """Find phantom series on Orthanc (date range, description/station regular expressions),
    download each one not yet stored, analyse it and record it."""
    from iqa.analysis import PairWaitlist, analyze_paths
    from iqa.batch import raise_alarms
    from iqa.criteria import Criteria
    from iqa.store import Store

    client = Orthanc(url, user=user, password=password)
    try:
        desc_re = re.compile(description, re.I) if description else None
        station_re = re.compile(station, re.I) if station else None
    except re.error as exc:
        raise IqaError(f"invalid filter pattern: {exc}") from None
    summary = PullSummary()
    criteria = Criteria.default(criteria_path)
    pairs = PairWaitlist()
    with Store(store_path) as store, tempfile.TemporaryDirectory(prefix="iqa-pull-") as tmp:
        for series in client.find_series(since=since, until=until):
            tags = series.get("MainDicomTags", {})
            if desc_re and not desc_re.search(tags.get("SeriesDescription", "")):
                continue
            if station_re and not station_re.search(tags.get("StationName", "")):
                continue
            summary.found += 1
            uid = tags.get("SeriesInstanceUID", "")
            if uid and store.has_series(uid):
                summary.skipped += 1
                continue
            folder = Path(tmp) / series["ID"]
            client.download_series(series, folder)
            partner = pairs.partner(folder)        # the first of a NEMA pair, analysed alone earlier
            outcome = analyze_paths([partner, folder] if partner else [folder], criteria=criteria)
            summary.analyzed += sum(not store.has_series(r.series_uid) for r in outcome.results)
            store.add_results(outcome.results)     # the partner gains its snr_subtraction
            summary.failures.extend(FileFailure(f"orthanc:{series['ID']}", f.reason) for f in outcome.failures)
        if summary.analyzed:
            raise_alarms(store)
    return summary
