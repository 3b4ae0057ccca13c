"""Printing result objects as a table, JSON or CSV (presentation only, no analysis)."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

STATUS_MARK = {"pass": "pass", "warn": "WARN", "fail": "FAIL", "info": "-"}


def _fmt(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.6g}"
    return str(x)


def _limits(limits: dict[str, list]) -> str:
    parts = []
    for key in ("tolerance", "action"):
        if key in limits:
            lo, hi = limits[key]
            if lo is None:
                parts.append(f"{key} <= {_fmt(hi)}")
            elif hi is None:
                parts.append(f"{key} >= {_fmt(lo)}")
            else:
                parts.append(f"{key} {_fmt(lo)}..{_fmt(hi)}")
    return "; ".join(parts)


def results_json(results: list[dict[str, Any]]) -> str:
    return json.dumps(results, indent=2, allow_nan=False)


def results_csv(results: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["series_uid", "phantom", "scanner", "acquired", "metric", "value", "unit", "status",
                "limits", "criterion"])
    for r in results:
        scanner = "/".join(v for v in (r["scanner"].get("model"), r["scanner"].get("serial")) if v)
        for name, m in r["metrics"].items():
            w.writerow([r["series_uid"], r["phantom"], scanner, r.get("acquired") or "", name,
                        repr(m["value"]), m["unit"], m["status"], _limits(m.get("limits", {})),
                        m.get("criterion", "")])
    return buf.getvalue()


def results_table(results: list[dict[str, Any]]) -> str:
    out = []
    for r in results:
        sc = r["scanner"]
        head = (f"{r['phantom']}  {r['modality']}  {sc.get('manufacturer', '')} {sc.get('model', '')} "
                f"{sc.get('serial', '')}  acquired {r.get('acquired') or 'unknown'}  -> {r.get('status', '').upper()}")
        out.append(head.strip())
        out.append(f"  series {r['series_uid']}  ({len(r.get('files', []))} files)")
        rows = [("metric", "value", "unit", "status", "limits", "criterion")]
        for name, m in r["metrics"].items():
            rows.append((name, _fmt(m["value"]), m["unit"], STATUS_MARK[m["status"]],
                         _limits(m.get("limits", {})), m.get("criterion", "")))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for i, row in enumerate(rows):
            out.append("  " + "  ".join(c.ljust(w) if j != 1 else c.rjust(w)
                                        for j, (c, w) in enumerate(zip(row, widths))).rstrip())
            if i == 0:
                out.append("  " + "  ".join("-" * w for w in widths))
        for w in r.get("warnings", []):
            out.append(f"  warning: {w}")
        out.append("")
    return "\n".join(out)


def render(results: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return results_json(results)
    if fmt == "csv":
        return results_csv(results)
    return results_table(results)
