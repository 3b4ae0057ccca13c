"""Time one peer analysis (pylinac or hazen) inside its own virtualenv.

Run by ``benchmarks/_peers.py`` with the peer venv's interpreter; imports only the standard
library and the peer.  Timing is taken here, around the peer's own load + analyse call (its
import is excluded), so interpreter start-up and imports do not count against the peer.

    python _peer_driver.py pylinac ACRCT FOLDER [--repeat 2] [--warmup 1]
    python _peer_driver.py hazen acr_all T1 T2 SAG
    python _peer_driver.py hazen snr FOLDER

Prints one JSON line: ``{"tool", "task", "times_s", "error", "summary"}``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback


def pylinac_job(task: str, folders: list[str]):
    import pylinac

    cls = getattr(pylinac, task)

    def job():
        a = cls(folders[0])
        a.analyze()
        try:
            return str(a.results())[:300]
        except Exception as exc:   # noqa: BLE001  (a results() failure is only a summary problem)
            return f"results() failed: {exc}"
    return job, getattr(pylinac, "__version__", "?")


def hazen_job(task: str, folders: list[str]):
    import hazenlib
    from hazenlib.orchestration import init_task
    from hazenlib.utils import get_dicom_files

    if task == "acr_all":
        from hazenlib.orchestration import ACRLargePhantomProtocol

        def job():
            res = ACRLargePhantomProtocol(folders, report=False, report_dir=None).run()
            return f"{len(res.results)} task results"
    else:
        def job():
            files = get_dicom_files(folders[0])
            kwargs = {"measured_slice_width": None, "coil": None} if task == "snr" else {}
            res = init_task(task, files, False, None, **kwargs).run()
            return str(res)[:300]
    return job, getattr(hazenlib, "__version__", "?")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=["pylinac", "hazen"])
    ap.add_argument("task")
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    out = {"tool": args.tool, "task": args.task, "times_s": [], "error": None, "summary": "", "version": ""}
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")     # peers print progress; keep our JSON line clean
    try:
        job, out["version"] = (pylinac_job if args.tool == "pylinac" else hazen_job)(args.task, args.folders)
        for _ in range(args.warmup):
            job()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out["summary"] = job()
            out["times_s"].append(time.perf_counter() - t0)
    except BaseException as exc:   # noqa: BLE001  (any peer failure is reported in the table, not raised)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"[:300]
    finally:
        sys.stdout = real_stdout
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
