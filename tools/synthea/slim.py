"""Keep only what bhi-fhir reads from a Synthea run: tools/synthea/out/<run>/{bulk,bundles} → slim/.

    python3 tools/synthea/slim.py tools/synthea/out/42-40

Kept: Patient, Condition (billing diagnoses), the timeline's context types (CarePlan, Task,
ServiceRequest, Encounter, Consent, Procedure, QuestionnaireResponse, as in
bhi_fhir/sync/source.py CONTEXT_TYPES), Questionnaire, Observations with category ``survey``,
and the DiagnosticReports whose ``result`` points at a kept Observation (Synthea records each
PHQ/GAD/AUDIT-C screen as such a report plus its total, seen in Synthea 3.3 output). Everything else
(Claim, ExplanationOfBenefit, Medication*, Immunization, labs and vitals, Provenance …) goes.

Bulk NDJSON is streamed line by line into slim/bulk/<Type>.ndjson; each transaction Bundle is
rewritten with only the kept entries into slim/bundles/. Entries left in a slimmed Bundle may
still reference dropped ones (Practitioner/Organization conditional references, Claims), so a
slimmed Bundle is for reading, not for posting to a server as is.

Prints the counts kept per type and the screening Observations by LOINC code. Standard library
only.
"""

# ruff: noqa: T201  (a command-line report: printing is its output)

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

KEEP = frozenset({
    "Patient", "Condition", "CarePlan", "Task", "ServiceRequest", "Encounter", "Consent",
    "Procedure", "QuestionnaireResponse", "Questionnaire",
})
SURVEY = "survey"
# Screening totals bhi-fhir scores (LOINC total codes), for the printed summary.
TOTALS = {
    "44261-6": "PHQ-9", "55758-7": "PHQ-2", "89204-2": "PHQ-A", "70274-6": "GAD-7",
    "75626-2": "AUDIT-C", "99046-5": "EPDS",
}


def is_survey(resource: dict[str, Any]) -> bool:
    return any(
        coding.get("code") == SURVEY
        for concept in resource.get("category") or []
        for coding in concept.get("coding") or []
    )


def loinc(resource: dict[str, Any]) -> str:
    for coding in (resource.get("code") or {}).get("coding") or []:
        if coding.get("system") == "http://loinc.org":
            return str(coding.get("code"))
    return "?"


def result_ids(report: dict[str, Any]) -> list[str]:
    """The ids (or urn:uuid values) a report's ``result`` points at."""
    return [str(r.get("reference", "")).rsplit("/", 1)[-1].removeprefix("urn:uuid:")
            for r in report.get("result") or []]


def slim_bulk(source: Path, target: Path, counts: Counter[str], codes: Counter[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    kept_observations: set[str] = set()
    observations = source / "Observation.ndjson"
    if observations.exists():
        with observations.open() as lines, (target / "Observation.ndjson").open("w") as out:
            for line in lines:
                resource = json.loads(line)
                if is_survey(resource):
                    kept_observations.add(resource["id"])
                    codes[loinc(resource)] += 1
                    counts["Observation"] += 1
                    out.write(line if line.endswith("\n") else line + "\n")
    reports = source / "DiagnosticReport.ndjson"
    if reports.exists():
        with reports.open() as lines, (target / "DiagnosticReport.ndjson").open("w") as out:
            for line in lines:
                if any(i in kept_observations for i in result_ids(json.loads(line))):
                    counts["DiagnosticReport"] += 1
                    out.write(line if line.endswith("\n") else line + "\n")
    for path in sorted(source.glob("*.ndjson")):
        kind = path.stem
        if kind not in KEEP:
            continue
        with path.open() as lines, (target / path.name).open("w") as out:
            for line in lines:
                counts[kind] += 1
                out.write(line if line.endswith("\n") else line + "\n")


def slim_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    entries = bundle.get("entry") or []
    kept: list[dict[str, Any]] = []
    kept_observations: set[str] = set()
    for entry in entries:
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        if kind in KEEP or (kind == "Observation" and is_survey(resource)):
            kept.append(entry)
            if kind == "Observation":
                kept_observations.add(str(entry.get("fullUrl", "")).removeprefix("urn:uuid:"))
                kept_observations.add(str(resource.get("id")))
    for entry in entries:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "DiagnosticReport" and any(
            i in kept_observations for i in result_ids(resource)
        ):
            kept.append(entry)
    return {**bundle, "entry": kept}


def main(run: Path) -> int:
    bulk, bundles, slim = run / "bulk", run / "bundles", run / "slim"
    if not bulk.is_dir() and not bundles.is_dir():
        print(f"{run}: no bulk/ or bundles/ folder (run tools/synthea/generate)", file=sys.stderr)
        return 2
    counts: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    if bulk.is_dir():
        slim_bulk(bulk, slim / "bulk", counts, codes)
    bundle_counts: Counter[str] = Counter()
    if bundles.is_dir():
        (slim / "bundles").mkdir(parents=True, exist_ok=True)
        for path in sorted(bundles.glob("*.json")):
            bundle = json.loads(path.read_text())
            if bundle.get("resourceType") != "Bundle":
                continue
            slimmed = slim_bundle(bundle)
            if not any(e["resource"].get("resourceType") == "Patient" for e in slimmed["entry"]):
                continue  # hospital and practitioner bundles: nothing bhi-fhir reads
            for entry in slimmed["entry"]:
                bundle_counts[entry["resource"]["resourceType"]] += 1
            (slim / "bundles" / path.name).write_text(json.dumps(slimmed))
    print("kept (bulk):", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if bundle_counts:
        print("kept (bundles):",
              ", ".join(f"{k} {v}" for k, v in sorted(bundle_counts.items())))
    print("screening totals (bulk, by LOINC):",
          ", ".join(f"{name} {codes.get(code, 0)}" for code, name in TOTALS.items()))
    other = sum(v for k, v in codes.items() if k not in TOTALS)
    print(f"other survey Observations (PRAPARE, HARK, DAST-10, fall risk ...): {other}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n", 2)[1], file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(Path(sys.argv[1])))
