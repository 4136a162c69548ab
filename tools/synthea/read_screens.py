"""Read a Synthea run's screens with bhi-fhir's Observation reader and print what it found.

    .venv/bin/python tools/synthea/read_screens.py tools/synthea/out/42-40/slim

Reads slim/bulk/*.ndjson (patients by ``Patient/<id>`` references) and, when present,
slim/bundles/*.json (one transaction Bundle per patient, ``urn:uuid:`` references resolved with
``bundle_references``), scores each patient's Observations and DiagnosticReports with
``scores_from_observations`` (AUDIT-C with the patient's sex) and prints, per instrument: the
screens read, how many are positive, and how many have an unknown suicide item. The two
formats must give the same counts; the script exits 1 when they do not.
"""

# ruff: noqa: T201  (a command-line report: printing is its output)

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.observation_scores import (
    ITEMS_UNKNOWN,
    SUICIDE_ITEM_UNKNOWN,
    bundle_references,
    scores_from_observations,
)
from bhi_fhir.instruments.result import SUICIDE_RISK, Score
from bhi_fhir.timeline import LABELS, patient_of

Resource = dict[str, Any]
READ = ("Patient", "Observation", "DiagnosticReport")


def from_bulk(folder: Path) -> list[Score]:
    by_patient: dict[str, list[Resource]] = defaultdict(list)
    for kind in READ:
        path = folder / f"{kind}.ndjson"
        if not path.exists():
            continue
        with path.open() as lines:
            for line in lines:
                resource = json.loads(line)
                patient = patient_of(resource)
                if patient is not None:
                    by_patient[patient].append(resource)
    return [score for resources in by_patient.values() for score in _score(resources, {})]


def from_bundles(folder: Path) -> list[Score]:
    scores: list[Score] = []
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text())
        resources = [e["resource"] for e in bundle.get("entry") or []
                     if e.get("resource", {}).get("resourceType") in READ]
        scores.extend(_score(resources, bundle_references(bundle)))
    return scores


def _score(resources: list[Resource], references: dict[str, str]) -> list[Score]:
    patient = next((r for r in resources if r.get("resourceType") == "Patient"), None)
    return scores_from_observations(
        resources, references=references, patient_sex=sex_of(patient)
    )


def summary(scores: Iterable[Score]) -> dict[str, Counter[str]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for score in scores:
        row = table[LABELS.get(score.instrument or "", str(score.instrument))]
        row["screens"] += 1
        row["positive"] += score.positive is True
        row["negative"] += score.positive is False
        row["items unknown"] += ITEMS_UNKNOWN in score.flags
        row["suicide item unknown"] += SUICIDE_ITEM_UNKNOWN in score.flags
        row["suicide risk"] += SUICIDE_RISK in score.flags
        row["no patient"] += score.subject_ref is None
    return table


def show(title: str, table: dict[str, Counter[str]]) -> None:
    columns = ("screens", "positive", "negative", "items unknown", "suicide item unknown",
               "suicide risk", "no patient")
    print(title)
    print(f"  {'instrument':<10}" + "".join(f"{c:>22}" for c in columns))
    for name in sorted(table):
        print(f"  {name:<10}" + "".join(f"{table[name][c]:>22}" for c in columns))
    totals = Counter[str]()
    for row in table.values():
        totals.update(row)
    print(f"  {'all':<10}" + "".join(f"{totals[c]:>22}" for c in columns))


def main(slim: Path) -> int:
    tables = {}
    if (slim / "bulk").is_dir():
        tables["NDJSON"] = summary(from_bulk(slim / "bulk"))
        show(f"{slim / 'bulk'} (NDJSON)", tables["NDJSON"])
    if (slim / "bundles").is_dir():
        tables["Bundles"] = summary(from_bundles(slim / "bundles"))
        show(f"{slim / 'bundles'} (transaction Bundles)", tables["Bundles"])
    if not tables:
        print(f"{slim}: no bulk/ or bundles/ folder", file=sys.stderr)
        return 2
    if len({json.dumps(t, sort_keys=True) for t in tables.values()}) > 1:
        print("the two formats disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1])))
