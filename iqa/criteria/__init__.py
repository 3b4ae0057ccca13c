"""Criteria tables: published limits as versioned data, judged against measured values.

A table is a TOML file (``iqa/criteria/*.toml``, or a site's own file)::

    [table]
    name = "ACR CT 2017"            # shown as the metric's criterion
    version = "2017.1"
    purpose = "accreditation"       # or "constancy" (daily limits used by trending)
    source = "ACR CT Accreditation Program, Phantom Testing Instructions (2017)"

    [[rule]]
    phantom = ["acr-ct-464"]        # or ["*"]
    metric = "water_hu"
    tolerance = [-7, 7]             # inside: pass                  (optional)
    action = [-7, 7]                # outside: fail; between: warn  (optional)
    relative_to = "slice_thickness_mm"   # limits are offsets from this protocol value (optional)
    when = { field_strength_t = [2.5, 3.5] }  # applies only to these protocols (optional)
    source = "..."                  # section of the standard

``null`` is not TOML: an open end is written as a very large number or left out by giving
only the other bound with ``min``/``max`` keys (``tolerance_min``, ``action_max`` ...).
A site table given with ``--criteria`` (or ``IQA_CRITERIA``) is consulted first, so a rule
there for the same phantom and metric overrides the built-in one.
"""
from __future__ import annotations

import functools
import math
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from iqa.errors import CriteriaError

Interval = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Rule:
    phantoms: tuple[str, ...]
    metric: str
    tolerance: Interval | None
    action: Interval | None
    when: tuple[tuple[str, float, float], ...] = ()
    relative_to: str | None = None
    source: str = ""

    def applies(self, phantom: str, metric: str, protocol: Mapping[str, Any]) -> bool:
        if metric != self.metric or not ("*" in self.phantoms or phantom in self.phantoms):
            return False
        for key, lo, hi in self.when:
            v = protocol.get(key)
            try:
                v = float(v)
            except (TypeError, ValueError):
                return False
            if not lo <= v <= hi:
                return False
        if self.relative_to is not None:
            try:
                float(protocol[self.relative_to])
            except (KeyError, TypeError, ValueError):
                return False
        return True

    def limits(self, protocol: Mapping[str, Any]) -> tuple[Interval | None, Interval | None]:
        shift = float(protocol[self.relative_to]) if self.relative_to else 0.0
        tol = (self.tolerance[0] + shift, self.tolerance[1] + shift) if self.tolerance else None
        act = (self.action[0] + shift, self.action[1] + shift) if self.action else None
        return tol, act


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    version: str
    purpose: str
    source: str
    rules: tuple[Rule, ...]
    path: str = ""

    @property
    def label(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Judgement:
    status: str
    limits: dict[str, list[float | None]]
    criterion: str | None


def _interval(spec: Mapping[str, Any], key: str, where: str) -> Interval | None:
    lo = spec.get(f"{key}_min")
    hi = spec.get(f"{key}_max")
    pair = spec.get(key)
    if pair is not None:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise CriteriaError(f"{where}: '{key}' must be [low, high]")
        lo, hi = pair
    if lo is None and hi is None:
        return None
    try:
        lo_f = -math.inf if lo is None else float(lo)
        hi_f = math.inf if hi is None else float(hi)
    except (TypeError, ValueError):
        raise CriteriaError(f"{where}: '{key}' bounds must be numbers") from None
    if lo_f > hi_f:
        raise CriteriaError(f"{where}: '{key}' low bound {lo_f} is above high bound {hi_f}")
    return (lo_f, hi_f)


def parse_table(text: str, *, path: str = "<string>") -> Table:
    """Parse and validate one criteria table; raise :class:`CriteriaError` naming the problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CriteriaError(f"{path}: not valid TOML ({exc})") from None
    head = data.get("table")
    if not isinstance(head, dict) or "name" not in head:
        raise CriteriaError(f"{path}: missing [table] with a name")
    rules = []
    for i, spec in enumerate(data.get("rule", [])):
        where = f"{path}: rule {i + 1}"
        if "metric" not in spec or "phantom" not in spec:
            raise CriteriaError(f"{where}: needs 'metric' and 'phantom'")
        phantoms = spec["phantom"]
        phantoms = (phantoms,) if isinstance(phantoms, str) else tuple(phantoms)
        tol = _interval(spec, "tolerance", where)
        act = _interval(spec, "action", where)
        if tol is None and act is None:
            raise CriteriaError(f"{where}: give 'tolerance' or 'action' limits")
        if tol is not None and act is not None and not (act[0] <= tol[0] and tol[1] <= act[1]):
            raise CriteriaError(f"{where}: action limits must enclose the tolerance")
        when = []
        for key, rng in dict(spec.get("when", {})).items():
            if not (isinstance(rng, list) and len(rng) == 2):
                raise CriteriaError(f"{where}: when.{key} must be [low, high]")
            when.append((key, float(rng[0]), float(rng[1])))
        rules.append(Rule(phantoms, str(spec["metric"]), tol, act, tuple(when),
                          spec.get("relative_to"), str(spec.get("source", ""))))
    return Table(str(head["name"]), str(head.get("version", "")), str(head.get("purpose", "accreditation")),
                 str(head.get("source", "")), tuple(rules), path)


def load_table(path: str | os.PathLike) -> Table:
    """Parse a site table; cached by path, size and modification time."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise CriteriaError(f"{p}: cannot read criteria table ({exc.strerror or exc})") from None
    return _load_table(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _load_table(path: str, size: int, mtime_ns: int) -> Table:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise CriteriaError(f"{p}: cannot read criteria table ({exc.strerror or exc})") from None
    return parse_table(text, path=str(p))


def builtin_tables() -> list[Table]:
    """Every criteria table shipped in this folder (other TOML files here, e.g. SPC parameters, are skipped)."""
    return list(_builtin_tables())


@functools.lru_cache(maxsize=1)
def _builtin_tables() -> tuple[Table, ...]:
    """Parsed once per process: tables are immutable, and parsing them per series cost ~40 ms."""
    out = []
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            if "[table]" not in text:
                continue
            out.append(parse_table(text, path=f"iqa/criteria/{entry.name}"))
    return tuple(out)


class Criteria:
    """An ordered set of tables: the first rule that applies to a (phantom, metric) wins."""

    def __init__(self, tables: list[Table]):
        self.tables = list(tables)

    @classmethod
    def default(cls, site: str | os.PathLike | None = None) -> "Criteria":
        tables = builtin_tables()
        site = site or os.environ.get("IQA_CRITERIA") or None
        if site:
            tables.insert(0, load_table(site))
        return cls(tables)

    def rule(self, phantom: str, metric: str, protocol: Mapping[str, Any], *,
             purpose: str = "accreditation") -> tuple[Table, Rule] | None:
        for table in self.tables:
            if table.purpose != purpose:
                continue
            for rule in table.rules:
                if rule.applies(phantom, metric, protocol):
                    return table, rule
        return None

    def judge(self, phantom: str, metric: str, value: float, protocol: Mapping[str, Any]) -> Judgement:
        """Status of ``value``: inside tolerance pass, inside action warn, outside action fail."""
        found = self.rule(phantom, metric, protocol)
        if found is None:
            return Judgement("info", {}, None)
        table, rule = found
        tol, act = rule.limits(protocol)
        limits: dict[str, list[float | None]] = {}
        if tol is not None:
            limits["tolerance"] = [_open(tol[0]), _open(tol[1])]
        if act is not None:
            limits["action"] = [_open(act[0]), _open(act[1])]
        if act is not None and not act[0] <= value <= act[1]:
            status = "fail"
        elif tol is not None and not tol[0] <= value <= tol[1]:
            status = "warn" if act is not None else "fail"
        else:
            status = "pass"
        return Judgement(status, limits, table.label)

    @property
    def labels(self) -> list[str]:
        return [f"{t.name} {t.version}".strip() for t in self.tables]


def _open(x: float) -> float | None:
    return None if math.isinf(x) else x
