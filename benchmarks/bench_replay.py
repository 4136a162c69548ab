"""The workload the practice plan creates: weekly ``apply`` over two years of a Synthea clinic.

    tools/synthea/generate   (or BHI_SYNTHEA_POPULATION=30 BHI_SYNTHEA_FORMATS=bulk, as CI)
    .venv/bin/python benchmarks/bench_replay.py [--run tools/synthea/out/42-30] [--years 2]

"Today" steps one week at a time over the last ``--years`` of the population (Synthea's end
date back); each week ``apply`` reads the clinic as it stood that day (tools/synthea/as_of.py:
nothing from after today, deaths not yet known) plus every earlier week's ``--out`` Bundle, so
work already planned is read back and not planned twice, as a practice that runs it weekly and
writes its output would see. Printed: new actions per 100 patient-years by rule (patient-years
= living patients on each week's day × 7/365), then the wall time and peak RSS of one ``apply``
process over the whole population on the last day. Nothing is asserted; the numbers are for a
clinician judging the care-manager workload the plan's rules and cut points create.

Measured on the 2-core dev machine (load average about 6 from other work), the CI population
(seed 42, 30 living + 8 deceased, 10 years; examples/practice-plan.toml, look-back 30 days):

    weekly apply, 105 steps to 2026-01-01: 60.4 patient-years (living patients), replay 516 s
    rule                       actions   per 100 patient-years
    consent                          4                     6.6
    engage                           4                     6.6
    all                              8                    13.2
    one apply over the whole population on 2026-01-01: 6.6 s wall, peak RSS 247 MB

Synthea gives a PHQ-9 the same day as a positive PHQ-2 (so no phq9-followup), writes no
treatment Consent (so no enroll, and no rule for the enrolled), and few positive AUDIT-Cs.
"""



from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from typer.testing import CliRunner

from bhi_fhir.cli import _register, app

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "examples" / "practice-plan.toml"


def _as_of_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("as_of", ROOT / "tools/synthea/as_of.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _end_date(run: Path) -> date:
    for word in (run / "params").read_text().split():
        if word.startswith("end="):
            return date.fromisoformat(f"{word[4:8]}-{word[8:10]}-{word[10:12]}")
    raise SystemExit(f"{run}/params has no end date")


def _living(folder: Path, day: date) -> int:
    alive = 0
    with (folder / "Patient.ndjson").open() as lines:
        for line in lines:
            patient = json.loads(line)
            death = patient.get("deceasedDateTime")
            alive += not (patient.get("deceasedBoolean") is True
                          or (isinstance(death, str) and death[:10] <= day.isoformat()))
    return alive


def replay(slim: Path, end: date, years: int, work: Path) -> tuple[Counter[str], float, int]:
    """New actions by rule over the weekly steps, patient-years, and the steps run."""
    as_of = _as_of_module()
    runner = CliRunner()
    actions: Counter[str] = Counter()
    outs: list[Path] = []
    patient_years = 0.0
    day, steps = end - timedelta(days=365 * years), 0
    while day <= end:
        folder = work / "clinic"
        for old in folder.glob("*.ndjson"):
            old.unlink()
        as_of.write_as_of(slim, folder, day)
        out = work / f"out-{day.isoformat()}.json"
        result = runner.invoke(app, ["apply", str(folder), *map(str, outs), "--plan", str(PLAN),
                                     "--today", day.isoformat(), "--out", str(out),
                                     "--format", "json"])
        if result.exit_code != 0:
            raise SystemExit(f"apply failed on {day}: {result.output[-2000:]}")
        report = json.loads(result.stdout)
        for patient in report["patients"]:
            for action in patient["actions"]:
                actions[action["rule"]] += 1
        if out.exists():
            outs.append(out)
        patient_years += _living(folder, day) * 7 / 365
        day += timedelta(days=7)
        steps += 1
    return actions, patient_years, steps


def one_apply(slim: Path, end: date, work: Path) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and patients of one ``bhi-fhir apply`` process."""
    exe = Path(sys.executable).parent / "bhi-fhir"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(exe), "apply", str(slim), "--plan", str(PLAN), "--today", end.isoformat(),
         "--out", str(work / "whole.json"), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    stdout = process.stdout.read() if process.stdout else b""
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise SystemExit("apply over the whole population failed")
    return wall, usage.ru_maxrss / 1024, len(json.loads(stdout)["patients"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "tools/synthea/out/42-30")
    parser.add_argument("--years", type=int, default=2)
    args = parser.parse_args()
    slim = args.run / "slim" / "bulk"
    if not (slim / "Patient.ndjson").exists():
        raise SystemExit(f"no population at {slim}: run tools/synthea/generate first")
    _register()
    end = _end_date(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        actions, patient_years, steps = replay(slim, end, args.years, work)
        replay_s = time.perf_counter() - started
        wall, rss, patients = one_apply(slim, end, work)
    params = (args.run / "params").read_text().strip()
    print(f"population: {args.run.name} ({patients} patients), {params}")
    print(f"weekly apply, {steps} steps to {end}: {patient_years:.1f} patient-years "
          f"(living patients), replay {replay_s:.0f} s")
    print(f"{'rule':<24}{'actions':>10}{'per 100 patient-years':>24}")
    for rule, count in sorted(actions.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{rule:<24}{count:>10}{100 * count / patient_years:>24.1f}")
    total = sum(actions.values())
    print(f"{'all':<24}{total:>10}{100 * total / patient_years:>24.1f}")
    print(f"one apply over the whole population on {end}: {wall:.1f} s wall, "
          f"peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
