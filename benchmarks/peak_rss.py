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


def code_at(ref: str | None, folder: Path) -> Path | None:
    """The repository's code at git ``ref`` unpacked under ``folder`` (the "before" side of a
    before/after pair), or None without a ref."""
    if not ref:
        return None
    old = folder / "before"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    return old
