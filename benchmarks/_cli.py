"""CLI section: start-up of ``iqa --help`` and a first ``iqa analyze`` in a fresh process.

Each figure is a new process (``subprocess.run``), so it includes interpreter start-up,
imports, the Numba cache load (warm: a warm-up run fills it first) and, for ``analyze``,
reading the files.  ``python -c pass`` is given as the interpreter's own floor.  Absolute
goals (issue 3/8: help < 0.3 s, cold analyze with warm cache < 1.5 s) are judged on the
minimum of the runs: on a shared machine other load only ever adds time.
"""
from __future__ import annotations

import compileall
import subprocess
import sys
from pathlib import Path

from _common import BIN, REPO, Row, fixture, interleave, log

#: iqa's own source folders: compiled before timing, as a wheel install (or ``make install``) has them.
SOURCES = ("iqa", "kernels", "phantoms", "cli", "fixtures")


def iqa_exe() -> list[str]:
    exe = BIN / "iqa"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "iqa.cli.main"]


def _proc(cmd: list[str]):
    def run():
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
    return run


def run(quick: bool = False, repeat: int = 7) -> list[Row]:
    # An editable install has no bytecode for iqa's modules and, with PYTHONDONTWRITEBYTECODE set,
    # never writes any: each fresh process would recompile them (~0.1 s), which no installed user pays.
    for folder in SOURCES:
        compileall.compile_dir(REPO / folder, quiet=1)
    iqa = iqa_exe()
    rows: list[Row] = []
    base = _proc([sys.executable, "-c", "pass"])
    helpc = _proc([*iqa, "--help"])
    log("cli: --help")
    t_base, t_help = interleave([base, helpc], repeat=repeat)
    rows.append(Row("cli", "python -c pass (interpreter floor)", "", t_base.min_s, t_base.median_s, t_base.n,
                    cpu_s=t_base.cpu_median_s))
    rows.append(Row("cli", "iqa --help", "", t_help.min_s, t_help.median_s, t_help.n, goal="< 0.3 s",
                    met=t_help.min_s < 0.3, cpu_s=t_help.cpu_median_s))
    targets = [("ct-water 1 slice 128²", fixture("ct-water", n_slices=1, matrix=128))]
    if not quick:
        targets = [("ct-water 1 slice 512²", fixture("ct-water", n_slices=1)),
                   ("acr-ct-464 43 × 512²", fixture("acr-ct-464")),
                   ("acr-mri-large 11 × 256² + localizer", fixture("acr-mri-large"))]
    for label, folder in targets:
        log(f"cli: analyze {label}")
        cmd = _proc([*iqa, "analyze", str(folder), "--format", "json"])
        t = interleave([cmd], repeat=max(1 if quick else 3, repeat // 2), warmup=1)[0]   # warm-up fills the Numba cache
        rows.append(Row("cli", f"iqa analyze --format json, fresh process, warm Numba cache: {label}", "",
                        t.min_s, t.median_s, t.n, goal="< 1.5 s", met=t.min_s < 1.5, cpu_s=t.cpu_median_s))
    return rows


def import_profile(folder: Path, top: int = 15) -> list[str]:
    """The slowest imports of a fresh ``iqa analyze`` (``python -X importtime``), cumulative µs."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "iqa.cli.main", "analyze", str(folder),
                        "--format", "json"], capture_output=True, text=True)
    rows = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[1].isdigit():
                rows.append((int(parts[1]), parts[2]))
    rows.sort(reverse=True)
    return [f"{us / 1e3:8.1f} ms  {name}" for us, name in rows[:top]]
