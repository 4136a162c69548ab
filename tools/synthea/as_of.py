"""A Synthea population as a clinic would have held it on one day: slim/bulk → as-of/bulk.

    python3 tools/synthea/as_of.py tools/synthea/out/42-30/slim/bulk 2025-08-02 /tmp/as-of

Synthea simulates up to its end date, so a ``--today`` before that date would let the workflow
see screens that have not happened yet. ``write_as_of`` keeps, from each ``<Type>.ndjson``, the
resources dated on or before ``day`` and rewinds what was still open that day:

* dated resources (screens, reports, encounters, conditions, procedures, care plans) after
  ``day`` are dropped;
* a death after ``day`` is not known yet (``Patient.deceased[x]`` removed);
* a CarePlan that ended after ``day`` is still ``active`` with no end; a Condition abated after
  ``day`` is still active with no abatement.

Undated resources (Patient, Questionnaire) are kept. Standard library only, streamed line by
line; used by tests/integration/test_synthea.py and benchmarks/bench_replay.py.
"""

# ruff: noqa: T201  (a command-line tool: printing is its output)

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

Resource = dict[str, Any]


def _day(value: object) -> str | None:
    """The date part (YYYY-MM-DD, or a shorter partial date) of a FHIR date/dateTime."""
    return value[:10] if isinstance(value, str) and value else None


def _start(resource: Resource) -> str | None:
    """When the resource happened (its first known date), or None if it has none."""
    for key in ("effectiveDateTime", "performedDateTime", "onsetDateTime", "authored",
                "authoredOn", "issued", "recordedDate"):
        if (found := _day(resource.get(key))) is not None:
            return found
    for key in ("effectivePeriod", "performedPeriod", "period", "onsetPeriod"):
        if (found := _day((resource.get(key) or {}).get("start"))) is not None:
            return found
    return None


def as_of(resource: Resource, day: date) -> Resource | None:
    """``resource`` as known on ``day``: None if it had not happened yet, else a copy rewound
    (death, care-plan end, abatement after ``day`` removed)."""
    today = day.isoformat()
    start = _start(resource)
    if start is not None and start > today:
        return None
    kind = resource.get("resourceType")
    copy = dict(resource)
    if kind == "Patient":
        if (_day(copy.get("deceasedDateTime")) or "") > today:
            copy.pop("deceasedDateTime")
    elif kind == "CarePlan":
        period = dict(copy.get("period") or {})
        if (_day(period.get("end")) or "") > today:
            period.pop("end")
            copy["period"] = period
            copy["status"] = "active"
    elif kind == "Condition" and (_day(copy.get("abatementDateTime")) or "") > today:
        copy.pop("abatementDateTime")
        copy["clinicalStatus"] = {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]}
    return copy


def write_as_of(source: Path, target: Path, day: date) -> Counter[str]:
    """Write each ``source/<Type>.ndjson`` as of ``day`` into ``target``; counts kept by type."""
    target.mkdir(parents=True, exist_ok=True)
    kept: Counter[str] = Counter()
    for path in sorted(source.glob("*.ndjson")):
        with path.open() as lines, (target / path.name).open("w") as out:
            for line in lines:
                if not line.strip():
                    continue
                resource = as_of(json.loads(line), day)
                if resource is not None:
                    kept[path.stem] += 1
                    out.write(json.dumps(resource) + "\n")
    return kept


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        raise SystemExit(2)
    counts = write_as_of(Path(sys.argv[1]), Path(sys.argv[3]), date.fromisoformat(sys.argv[2]))
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
