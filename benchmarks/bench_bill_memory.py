"""Peak memory (RSS) of ``bhi-fhir bill --input`` as the input grows, before and after streaming.

Writes a synthetic bulk export as NDJSON, one file per type as bulk export does: N
care-management time entries (Encounters, spread over N/10 patients and October 2026, by the
example plan's care managers), the patients, and as many QuestionnaireResponses as time entries
(a type billing does not read). Each ``bill --month 2026-10 --format json`` runs in a fresh
process; its peak RSS is read with ``wait4``. With ``--before REF`` the same input is also billed
by the code at git REF (extracted with ``git archive`` into a temporary folder and put first on
PYTHONPATH), side by side:

    .venv/bin/python benchmarks/bench_bill_memory.py [--sizes 20000,200000] [--before REF]
                                                     [--formats csv,json]

Nothing here is asserted; the numbers are for the reader. Measured on the 2-core dev machine
(other jobs running, so the seconds are loose); before = 761e986, the commit before streaming:

    time entries   format     MB   before MB      s   after MB      s
    20,000         csv        47         444   43.2        139   42.9
    20,000         json       47         444   38.7        154   24.8
    200,000        csv       474        3704   95.3        221   71.3
    200,000        json      474        3704  205.1        559  133.0

About 80 MB of each run is the interpreter and its imports. What still grows with the input
is the report: every time entry is named in it (its patient-month's ``entries``, and here,
where no month is billable, ``not_counted`` too), so the JSON form, built whole before it is
written, grows with the entries; the input itself is held one bucket at a time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from peak_rss import code_at, measured_run

from bhi_fhir.billing.representation import time_entry

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "examples" / "practice-plan.toml"
QR = ROOT / "examples" / "screening" / "phq9-moderate-item9.json"
MANAGERS = ("Practitioner/bhcm-garcia", "Practitioner/bhcm-okafor")
TZ = ZoneInfo("America/New_York")


def write_inputs(folder: Path, count: int) -> Path:
    export = folder / f"export-{count}"
    export.mkdir()
    patients = max(1, count // 10)
    qr = json.loads(QR.read_text())
    with (export / "Encounter.ndjson").open("w") as out:
        for n in range(count):
            start = datetime(2026, 10, 1 + n % 28, 9, tzinfo=TZ) + timedelta(minutes=n % 7 * 30)
            entry = time_entry(
                id=f"te{n}", patient=f"Patient/p{n % patients}", clinician=MANAGERS[n % 2],
                start=start, end=start + timedelta(minutes=10), mode="phone",
                identifier_system="urn:bench:time-entry", identifier_value=f"te{n}",
            )  # fmt: skip
            out.write(json.dumps(entry) + "\n")
    with (export / "Patient.ndjson").open("w") as out:
        for p in range(patients):
            out.write(json.dumps({"resourceType": "Patient", "id": f"p{p}",
                                  "name": [{"family": "Bench", "given": ["Synthetic"]}],
                                  "birthDate": "1970-01-01"}) + "\n")  # fmt: skip
    with (export / "QuestionnaireResponse.ndjson").open("w") as out:
        for n in range(count):
            subject = {"reference": f"Patient/p{n % patients}"}
            out.write(json.dumps({**qr, "id": f"qr{n}", "subject": subject}) + "\n")
    return export


def peak(export: Path, code: Path | None, fmt: str) -> tuple[float, float, int]:
    """Peak RSS in MB, seconds, and exit code of one ``bill`` run."""
    return measured_run(["bill", "--month", "2026-10", "--input", str(export),
                         "--plan", str(PLAN), "--format", fmt], code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000")
    parser.add_argument("--before", help="git ref of the code to compare with")
    parser.add_argument("--formats", default="csv,json", help="bill --format values to run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-bill-") as tmp:
        folder = Path(tmp)
        old = code_at(args.before, folder)
        print(f"{'time entries':<14} {'format':<6} {'MB':>6}  {'before MB':>10} {'s':>6}  "
              f"{'after MB':>9} {'s':>6}")  # fmt: skip
        for count in sizes:
            export = write_inputs(folder, count)
            size = sum(p.stat().st_size for p in export.iterdir()) / 1e6
            for fmt in args.formats.split(","):
                before = peak(export, old, fmt) if old else None
                after = peak(export, None, fmt)
                was = f"{before[0]:>10.0f} {before[1]:>6.1f}" if before else f"{'-':>10} {'-':>6}"
                codes = f"  (exit {before[2] if before else '-'}/{after[2]})"
                print(f"{count:<14,} {fmt:<6} {size:>6.0f}  {was}  {after[0]:>9.0f} "
                      f"{after[1]:>6.1f}{codes}", flush=True)  # fmt: skip
            for path in export.iterdir():
                path.unlink()
            export.rmdir()


if __name__ == "__main__":
    main()
