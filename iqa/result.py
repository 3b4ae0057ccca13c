"""The result model: measurements out of a phantom pipeline, judged metrics, result objects.

The JSON form is the public contract ``iqa.result/1`` (shared/INTERFACE.md): values are plain
numbers in the stated unit, never strings or NaN; a metric that could not be measured is
omitted and the reason given in ``warnings``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "iqa.result/1"
STATUSES = ("pass", "warn", "fail", "info")


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measured value with its unit, as produced by a phantom pipeline (not yet judged)."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"measurement value must be a number, got {type(self.value).__name__}")
        if not math.isfinite(self.value):
            raise ValueError("measurement value must be finite; omit the metric and warn instead")


@dataclass(slots=True)
class PhantomAnalysis:
    """What a phantom pipeline returns: measurements, curves, warnings and localisation detail."""

    phantom: str
    measurements: dict[str, Measurement] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)   # centre, rotation, module slices ...

    def add(self, name: str, value: float, unit: str) -> None:
        """Record a metric; a non-finite value is dropped with a warning rather than stored."""
        value = float(value)
        if not math.isfinite(value):
            self.warnings.append(f"{name}: could not be measured (non-finite value)")
            return
        self.measurements[name] = Measurement(value, unit)


@dataclass(frozen=True, slots=True)
class Metric:
    """A judged metric: value, unit, status and the limits and criterion that judged it."""

    value: float
    unit: str
    status: str = "info"
    limits: dict[str, list[float | None]] = field(default_factory=dict)
    criterion: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "unit": self.unit, "status": self.status}
        if self.limits:
            out["limits"] = {k: list(v) for k, v in self.limits.items()}
        if self.criterion:
            out["criterion"] = self.criterion
        return out


@dataclass(slots=True)
class Result:
    """One analysed series (``iqa.result/1``)."""

    series_uid: str
    modality: str
    phantom: str
    scanner: dict[str, str]
    acquired: str | None
    protocol: dict[str, Any]
    metrics: dict[str, Metric]
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    iqa_version: str = ""
    criteria: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """Worst status over all metrics (fail > warn > pass > info)."""
        order = {"fail": 3, "warn": 2, "pass": 1, "info": 0}
        worst = max((order[m.status] for m in self.metrics.values()), default=0)
        return {v: k for k, v in order.items()}[worst]

    def to_dict(self, *, curves: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "phantom": self.phantom,
            "scanner": dict(self.scanner),
            "acquired": self.acquired,
            "protocol": _finite(dict(self.protocol)),
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "status": self.status,
            "warnings": list(self.warnings),
            "files": list(self.files),
            "iqa_version": self.iqa_version,
            "criteria": list(self.criteria),
        }
        if self.details:
            out["details"] = _finite(self.details)
        if curves and self.curves:
            out["curves"] = _finite(self.curves)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Result":
        return cls(
            series_uid=d["series_uid"], modality=d["modality"], phantom=d["phantom"],
            scanner=dict(d.get("scanner", {})), acquired=d.get("acquired"),
            protocol=dict(d.get("protocol", {})),
            metrics={k: Metric(v["value"], v["unit"], v.get("status", "info"),
                               {a: list(b) for a, b in v.get("limits", {}).items()}, v.get("criterion"))
                     for k, v in d.get("metrics", {}).items()},
            warnings=list(d.get("warnings", [])), files=list(d.get("files", [])),
            curves=dict(d.get("curves", {})), details=dict(d.get("details", {})),
            iqa_version=d.get("iqa_version", ""), criteria=list(d.get("criteria", [])),
        )


def _finite(obj: Any) -> Any:
    """Deep copy with numpy scalars made plain and non-finite floats replaced by None."""
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _finite(obj.tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
