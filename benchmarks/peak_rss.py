"""One ``python -m bhi_fhir`` run measured as the memory benchmarks compare them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measured_run(args: list[str], code: Path | None) -> tuple[float, float, int]:
    """Peak RSS in MB, wall seconds and exit code of ``python -m bhi_fhir ARGS``, run from
    ``code`` (a checkout of other code, for a before/after pair) or this one."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bhi_fhir", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=code or ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    return usage.ru_maxrss / 1024, time.perf_counter() - started, os.waitstatus_to_exitcode(status)
