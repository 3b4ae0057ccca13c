"""Analysis orchestration: load series, identify the phantom, measure, judge, pair.

The core knows phantom pipelines only by name (``PHANTOMS`` below, module paths as data);
each is imported when first used, so the import graph stays one-way (``iqa.phantoms``
imports the core, never the reverse) and start-up stays fast.

A phantom module provides::

    NAME: str                       # e.g. "acr-ct-464"
    MODALITY: str                   # "CT" or "MR"
    def identify(series) -> float   # confidence 0..1 that the series shows this phantom
    def analyze(series) -> PhantomAnalysis
    def analyze_pair(a, b) -> dict[str, Measurement]   # optional: two-acquisition metrics
"""
from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from iqa._version import __version__
from iqa.criteria import Criteria
from iqa.dicom import FileFailure, Series, SeriesHeader, iter_series, scan
from iqa.errors import InputError, IqaError, LocalizationError
from iqa.result import Metric, PhantomAnalysis, Result

log = logging.getLogger(__name__)

#: Phantom name -> (module, modality).  Aliases map user spellings to names.
PHANTOMS = MappingProxyType({
    "water": ("iqa.phantoms.water", "CT"),
    "acr-ct-464": ("iqa.phantoms.acr_ct", "CT"),
    "catphan-604": ("iqa.phantoms.catphan604", "CT"),
    "acr-mri-large": ("iqa.phantoms.acr_mri", "MR"),
    "mr-flood": ("iqa.phantoms.flood", "MR"),
    "mr-grid": ("iqa.phantoms.grid", "MR"),
})
ALIASES = MappingProxyType({"ct-water": "water", "acr-ct": "acr-ct-464", "catphan": "catphan-604",
                            "catphan604": "catphan-604", "acr-mri": "acr-mri-large", "acr": "acr-mri-large",
                            "flood": "mr-flood", "grid": "mr-grid", "magnet": "mr-flood"})
#: Below this identification score no phantom is claimed.
MIN_SCORE = 0.5
#: A score at or above this is decisive: the search stops there.  Phantom modules score this
#: high only on their own phantom (each one's ``identify`` rejects the others'), so the
#: remaining modules are not consulted; featureless fallbacks (mr-flood, capped at 0.9) never
#: end the search.  On ACR MRI series this skips the flood and grid searches, ~45 % of the
#: end-to-end time (``make bench``).
DECISIVE_SCORE = 0.95
#: The order in which :func:`identify` asks the modules (names not listed follow in ``PHANTOMS``
#: order): the cheapest decisive test first.  acr-ct-464's costs ~0-20 ms on any CT series and
#: decides ACR series at once, where water's costs ~60 ms on an ACR series before rejecting it
#: (warm, 43 x 512²; cold ``iqa analyze`` of acr-ct-464: -60 ms, of a water slice: +20 ms for
#: importing the ACR module).  Only the time changes: each module rejects the others' phantoms.
IDENTIFY_ORDER = ("acr-ct-464", "water", "catphan-604", "acr-mri-large", "mr-flood", "mr-grid")


def phantom_names() -> list[str]:
    return list(PHANTOMS)


def canonical(name: str) -> str:
    name = name.strip().lower()
    name = ALIASES.get(name, name)
    if name != "auto" and name not in PHANTOMS:
        raise IqaError(f"unknown phantom '{name}'; choose auto or one of {', '.join(PHANTOMS)}")
    return name


def phantom_module(name: str):
    module, _ = PHANTOMS[canonical(name)]
    return importlib.import_module(module)


def identify(series: Series) -> str:
    """The phantom a series shows, judged from its pixels (never from its description).

    Modules are asked in ``IDENTIFY_ORDER``; the first score >= ``DECISIVE_SCORE`` wins at once,
    otherwise the highest score >= ``MIN_SCORE``.
    """
    scores = []
    rank = {name: i for i, name in enumerate(IDENTIFY_ORDER)}
    for name in sorted(PHANTOMS, key=lambda n: rank.get(n, len(rank))):
        module, modality = PHANTOMS[name]
        if modality != series.modality:
            continue
        try:
            mod = importlib.import_module(module)
        except ImportError:  # a pipeline not yet available in this build
            continue
        score = float(mod.identify(series))
        if score >= DECISIVE_SCORE:
            return name
        scores.append((score, name))
    scores.sort(reverse=True)
    if not scores or scores[0][0] < MIN_SCORE:
        best = f" (best guess {scores[0][1]} at {scores[0][0]:.2f})" if scores else ""
        raise LocalizationError(f"{series.where}: no known {series.modality} phantom recognised{best}; "
                                f"name it with --phantom")
    return scores[0][1]


def judge(analysis: PhantomAnalysis, series: Series, criteria: Criteria) -> Result:
    """Turn a pipeline's measurements into a result judged against the criteria."""
    protocol = dict(series.protocol)
    metrics: dict[str, Metric] = {}
    for name, m in analysis.measurements.items():
        j = criteria.judge(analysis.phantom, name, m.value, protocol)
        metrics[name] = Metric(m.value, m.unit, j.status, j.limits, j.criterion)
    return Result(
        series_uid=series.uid, modality=series.modality, phantom=analysis.phantom,
        scanner=series.scanner.to_dict(),
        acquired=series.acquired.isoformat(timespec="seconds") if series.acquired else None,
        protocol=protocol, metrics=metrics,
        warnings=list(series.warnings) + list(analysis.warnings),
        files=list(series.files), curves=analysis.curves, details=analysis.details,
        iqa_version=__version__,
        criteria=sorted({m.criterion for m in metrics.values() if m.criterion}),
    )


def analyze_series(series: Series, *, phantom: str = "auto", criteria: Criteria | None = None) -> Result:
    """Identify (unless named), measure and judge one series."""
    criteria = criteria or Criteria.default()
    name = canonical(phantom)
    if name == "auto":
        name = identify(series)
    else:
        _, modality = PHANTOMS[name]
        if series.modality != modality:
            raise InputError(f"{series.where}: {series.modality} series given, but {name} is a {modality} phantom")
    analysis = phantom_module(name).analyze(series)
    return judge(analysis, series, criteria)


@dataclass(slots=True)
class AnalysisOutcome:
    results: list[Result] = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)


def pair_key(series: Series | SeriesHeader) -> tuple:
    """Two acquisitions pair when scanner, modality, matrix, orientation, slice positions and
    protocol agree (NEMA MS 1 two-acquisition method needs identical geometry and protocol),
    and they belong to one session.

    NEMA MS 1 takes the two images back to back with nothing changed in between, so a pair
    never crosses studies (StudyInstanceUID; the acquisition date when a header has none).
    Without that, one day with a single acquisition would shift every later day's partner
    by one in an archive, and which series an interrupted batch had already stored would
    change the pairs on its rerun.
    """
    session = series.study_uid or (series.acquired.date().isoformat() if series.acquired else "")
    proto = tuple(sorted((k, round(v, 1) if isinstance(v, float) else v) for k, v in series.protocol.items()))
    if isinstance(series, SeriesHeader):
        f0 = series.frames[0]
        shape, orientation = (len(series.frames), f0.rows, f0.columns), f0.orientation
    else:
        shape, orientation = series.volume.shape, series.orientation
    return (series.scanner.key, series.modality, session, shape, tuple(round(o, 3) for o in orientation),
            tuple(round(float(p), 1) for p in series.positions_mm), proto)


class PairWaitlist:
    """MR acquisitions analysed alone, each waiting for the partner that arrives later.

    ``iqa listen`` and ``iqa pull`` analyse series one at a time as they arrive, but a scanner
    sends the two acquisitions of the NEMA two-acquisition SNR as two series.  The first is
    analysed alone and remembered here; the second is then analysed together with it, by the
    same rule as ``iqa analyze`` and ``iqa batch`` (:func:`pair_key`), so both gain
    ``snr_subtraction``.  Thread-safe (the listener's watcher and ``flush`` may both ask).
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple, Path] = {}
        self._lock = threading.Lock()

    def partner(self, folder: str | os.PathLike) -> Path | None:
        """The folder of the earlier acquisition ``folder`` pairs with (forgotten once paired),
        or None, in which case ``folder`` waits for its own partner if it holds one MR series."""
        try:
            headers = scan([folder])[0].headers
        except (IqaError, OSError):   # the analysis reports an unreadable folder in its own words
            return None
        if len(headers) != 1 or headers[0].modality != "MR":
            return None
        key, folder = pair_key(headers[0]), Path(folder)
        with self._lock:
            partner = self._waiting.get(key)
            if partner is None or partner.resolve() == folder.resolve():   # a series sent again
                self._waiting[key] = folder
                return None
            del self._waiting[key]
        return partner


def _add_pair_metrics(first: Result, second: Result, a: Series, b: Series, criteria: Criteria) -> None:
    mod = phantom_module(first.phantom)
    try:
        extra = mod.analyze_pair(a, b)
    except IqaError as exc:
        first.warnings.append(f"pairing with {second.series_uid} failed: {exc}")
        second.warnings.append(f"pairing with {first.series_uid} failed: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - last resort: a pairing bug must not lose both results
        log.debug("internal error while pairing %s with %s", first.series_uid, second.series_uid, exc_info=True)
        note = f"internal error while pairing: {type(exc).__name__}: {exc} (please report)"
        first.warnings.append(f"pairing with {second.series_uid} failed: {note}")
        second.warnings.append(f"pairing with {first.series_uid} failed: {note}")
        return
    for r in (first, second):
        for name, m in extra.items():
            j = criteria.judge(r.phantom, name, m.value, r.protocol)
            r.metrics[name] = Metric(m.value, m.unit, j.status, j.limits, j.criterion)
    first.details["paired_with"] = [second.series_uid]
    second.details["paired_with"] = [first.series_uid]


def _pairable(result: Result) -> bool:
    return hasattr(phantom_module(result.phantom), "analyze_pair")


def analyze_group(items: Iterable[Series | FileFailure], *, phantom: str = "auto",
                  criteria: Criteria | None = None) -> Iterator[Result | FileFailure]:
    """Analyse series one by one; pair consecutive acquisitions that share a :func:`pair_key`.

    A series waits for its partner only while pairing is possible (phantoms with
    ``analyze_pair``); the rest are yielded as soon as they are measured.
    """
    criteria = criteria or Criteria.default()
    pending: dict[tuple, tuple[Series, Result]] = {}
    for item in items:
        if isinstance(item, FileFailure):
            yield item
            continue
        target = phantom
        try:
            target = canonical(phantom)
            if target == "auto":
                target = identify(item)
            result = analyze_series(item, phantom=target, criteria=criteria)
        except IqaError as exc:
            yield _as_failure(item, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - last resort: one buggy pipeline never stops a batch
            yield _internal_failure(item, target, exc)
            continue
        if not _pairable(result):
            yield result
            continue
        key = (pair_key(item), result.phantom)
        if key in pending:
            first_series, first = pending.pop(key)
            _add_pair_metrics(first, result, first_series, item, criteria)
            yield first
            yield result
        else:
            pending[key] = (item, result)
    for _, result in pending.values():
        yield result


def iter_analyze(paths: Iterable[str | os.PathLike], *, phantom: str = "auto",
                 criteria: Criteria | None = None) -> Iterator[Result | FileFailure]:
    """Analyse every series under ``paths``; one bad series never stops the rest.

    Pairs (same scanner, phantom, protocol and positions, different series) are analysed
    together by the phantom's ``analyze_pair`` when it has one (NEMA two-acquisition SNR).
    """
    yield from analyze_group(iter_series(paths), phantom=phantom, criteria=criteria)


def _as_failure(series: Series, exc: Exception) -> FileFailure:
    msg = str(exc)
    first = series.files[0] if series.files else series.uid
    if msg.startswith(first + ": "):
        msg = msg[len(first) + 2:]
    elif msg.startswith(series.where + ": "):
        msg = msg[len(series.where) + 2:]
    return FileFailure(first, msg)


def _internal_failure(series: Series, phantom: str, exc: Exception) -> FileFailure:
    """A pipeline bug (not an :class:`IqaError`) as a one-line failure; the traceback goes to DEBUG."""
    stage = "identifying the phantom" if phantom == "auto" else f"analysing as {phantom}"
    log.debug("internal error while %s: %s", stage, series.where, exc_info=True)
    first = series.files[0] if series.files else series.uid
    return FileFailure(first, f"internal error while {stage}: {type(exc).__name__}: {exc} (please report)")


def analyze_paths(paths: Iterable[str | os.PathLike], *, phantom: str = "auto",
                  criteria: Criteria | None = None) -> AnalysisOutcome:
    out = AnalysisOutcome()
    for item in iter_analyze(paths, phantom=phantom, criteria=criteria):
        (out.failures if isinstance(item, FileFailure) else out.results).append(item)
    return out
