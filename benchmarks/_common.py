"""Shared helpers for ``benchmarks/run.py``: timing, machine description, cached fixtures, rows.

Timing rules (the machine is shared and noisy):

* every figure is the **min and median** of ``repeat`` runs after one warm-up run;
* a ratio (kernel vs reference, pipeline vs read floor) is measured **side by side**: the two
  callables alternate A B A B ..., so both see the same load, and the ratio is taken of the
  medians (the min ratio is kept too);
* the 1-minute load average is recorded next to every row.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Output, cached fixtures and peer venvs (IQA_BENCH_DIR moves them, e.g. for the smoke test).
RESULTS = Path(os.environ.get("IQA_BENCH_DIR") or REPO / "bench-results")
BIN = Path(sys.executable).parent


def load1() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass
class Timing:
    """Seconds: min and median wall time of ``n`` runs (after warm-up), and the median CPU time
    of this process and its children (less inflated by other load on a shared machine)."""

    min_s: float
    median_s: float
    n: int
    cpu_median_s: float | None = None

    @classmethod
    def of(cls, samples: list[float], cpu: list[float] | None = None) -> "Timing":
        return cls(min(samples), statistics.median(samples), len(samples),
                   statistics.median(cpu) if cpu else None)


def _cpu() -> float:
    import resource
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def interleave(fns: list[Callable[[], Any]], repeat: int = 5, warmup: int = 1, inner: int = 1,
               budget_s: float | None = None) -> list[Timing]:
    """Time several callables side by side: each round runs all of them, in a rotating order,
    so that they share the machine's load.  ``inner`` calls per sample (reported per call);
    stop after ``budget_s`` once every callable has 3 samples."""
    for _ in range(warmup):
        for f in fns:
            f()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    t_start = time.perf_counter()
    for i in range(repeat):
        order = list(range(len(fns)))
        k = i % len(fns)
        order = order[k:] + order[:k]
        for j in order:
            c0, t0 = _cpu(), time.perf_counter()
            for _ in range(inner):
                fns[j]()
            wall[j].append((time.perf_counter() - t0) / inner)
            cpu[j].append((_cpu() - c0) / inner)
        if budget_s is not None and time.perf_counter() - t_start > budget_s and i >= 2:
            break
    return [Timing.of(w, c) for w, c in zip(wall, cpu)]


def timeit(fn: Callable[[], Any], repeat: int = 5, warmup: int = 1, budget_s: float | None = None) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times; stop early past ``budget_s``."""
    return interleave([fn], repeat, warmup, 1, budget_s)[0]


def paired(fa: Callable[[], Any], fb: Callable[[], Any], repeat: int = 5, warmup: int = 1,
           inner: int = 1, budget_s: float | None = None) -> tuple[Timing, Timing, float, float]:
    """Time ``fa`` and ``fb`` side by side; returns (timing a, timing b, median b/a, min b/a)."""
    ta, tb = interleave([fa, fb], repeat, warmup, inner, budget_s)
    return ta, tb, tb.median_s / ta.median_s, tb.min_s / ta.min_s


def autoinner(fn: Callable[[], Any], target_s: float = 0.02, cap: int = 10_000) -> int:
    """Calls per sample so that one sample lasts about ``target_s``."""
    t0 = time.perf_counter()
    fn()
    dt = max(time.perf_counter() - t0, 1e-7)
    return int(min(cap, max(1, target_s / dt)))


@dataclass
class Row:
    """One line of the result table."""

    section: str
    name: str
    size: str = ""
    min_s: float | None = None
    median_s: float | None = None
    n: int = 0
    ref: str = ""                      # what it is compared with (reference, floor, peer)
    ref_min_s: float | None = None
    ref_median_s: float | None = None
    ratio: float | None = None         # from medians, side by side; meaning given by the section
    goal: str = ""
    met: bool | None = None
    note: str = ""
    load1: float = field(default_factory=load1)
    extra: dict[str, Any] = field(default_factory=dict)
    cpu_s: float | None = None         # median CPU seconds (process + children)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fmt_s(v: float | None) -> str:
    if v is None:
        return "–"
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.1f} ms"
    return f"{v:.2f} s"


def fmt_ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}×"


def markdown(rows: list[Row], columns: list[tuple[str, Callable[[Row], str]]]) -> str:
    head = "| " + " | ".join(c for c, _ in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, sep]
    for r in rows:
        lines.append("| " + " | ".join(f(r).replace("|", "\\|").replace("\n", " ") for _, f in columns) + " |")
    return "\n".join(lines)


def verdict(r: Row) -> str:
    return "" if r.met is None else ("yes" if r.met else "**no**")


# --- machine -----------------------------------------------------------------------------

def _version(module: str) -> str:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:   # noqa: BLE001  (a missing distribution is just "absent" in the table)
        return "absent"


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    from iqa._version import __version__
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "cpu": cpu, "cores": os.cpu_count(), "usable_cores": affinity, "memory_gb": mem_gb,
        "os": platform.platform(), "python": platform.python_version(), "iqa": __version__, "commit": commit,
        "numpy": _version("numpy"), "numba": _version("numba"), "scipy": _version("scipy"),
        "pydicom": _version("pydicom"), "loadavg_start": [round(v, 2) for v in os.getloadavg()],
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- fixtures ----------------------------------------------------------------------------

def fixture(name: str, root: Path | None = None, **params: Any) -> Path:
    """A fixture folder, generated once and cached under ``bench-results/fixtures``."""
    root = root or RESULTS / "fixtures"
    key = hashlib.sha1(json.dumps([name, params], sort_keys=True, default=str).encode()).hexdigest()[:10]
    out = root / f"{name}-{key}"
    done = out / ".complete"
    if not done.exists():
        from iqa.fixtures import generate
        if out.exists():
            shutil.rmtree(out)
        generate(name, out, **params)
        done.write_text(json.dumps(params, default=str))
    return out


def dicom_files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except fixture side files (truth.json, markers)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix != ".json" and not p.name.startswith("."))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {load1():.1f}] {msg}", file=sys.stderr, flush=True)
