"""Smoke test: ``benchmarks/run.py --quick`` runs end to end on small sizes and writes its table.

Speed is measured in ``benchmarks/`` and never asserted here (CONTRIBUTING.md): this only checks
that the suite runs, that every kernel agrees with its NumPy reference on the benchmark inputs,
and that the Markdown and JSON outputs hold the sections asked for.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_bench_runs(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--repeat", "1",
                        "--only", "kernels,pipelines,cli", "--output", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=REPO,
                       env={**os.environ, "IQA_BENCH_DIR": str(tmp_path / "bench")})
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    sections = {row["section"] for row in data["rows"]}
    assert sections == {"kernels", "pipelines", "cli"}
    assert data["machine"]["cores"] >= 1 and data["machine"]["numba"] != "absent"
    kernels = [row for row in data["rows"] if row["section"] == "kernels"]
    assert len(kernels) >= 20
    assert all(row["extra"]["agree"] for row in kernels), [row["name"] for row in kernels if not row["extra"]["agree"]]
    ends = [row for row in data["rows"] if row["name"].endswith("end to end (analyze_paths, auto)")]
    assert ends and not any(row["note"].startswith("iqa ") for row in ends), [row["note"] for row in ends]  # analysed
    assert all(row["median_s"] > 0 for row in data["rows"] if row["median_s"] is not None)
    for heading in ("## kernels", "## pipelines", "## cli", "| iqa --help |"):
        assert heading in r.stdout
    assert out.with_suffix(".md").read_text().startswith("# iqa benchmarks")
