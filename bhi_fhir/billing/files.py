"""The ``bill`` command's file side: billing rules from ``--rules`` or the practice plan, and a
month closed over ``--input`` files (NDJSON / Bundle / JSON) patient by patient, in bounded
memory (:class:`bhi_fhir.sources.PatientBuckets`)."""

from __future__ import annotations

import json
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bhi_fhir.billing._time import is_time_entry
from bhi_fhir.billing.entries import Rejected, ledger_entries
from bhi_fhir.billing.ledger import Month, PatientMonth, close_month
from bhi_fhir.billing.record import group_by_patient, patient_of
from bhi_fhir.billing.rules import BillingRules, rules_from_plan
from bhi_fhir.billing.writeback import bill_identifier
from bhi_fhir.fhirjson import ResourceDict as Resource
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sources import PatientBuckets, SourceError, expand_paths, read_resources

# ------------------------------------------------------------------------------- reading



def load_rules(
    path: Path | None, billing_practitioner: str | None, timezone: str | None
) -> BillingRules:
    data: dict[str, Any] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        if isinstance(data.get("billing"), dict):
            data = data["billing"]
    if billing_practitioner is not None:
        data["billing_practitioner"] = billing_practitioner
    if timezone is not None:
        data["timezone"] = timezone
    return BillingRules.model_validate(data)


def load_plan_rules(
    path: Path, billing_practitioner: str | None, timezone: str | None
) -> BillingRules:
    """Billing rules from a practice plan (``[team]`` + ``[billing]``, see
    :func:`bhi_fhir.billing.rules.rules_from_plan`)."""
    return rules_from_plan(
        load_practice_plan(path), billing_practitioner=billing_practitioner, timezone=timezone
    )


# The resource types billing reads (:class:`bhi_fhir.billing.ledger.PatientRecord`); the rest of
# an export (Observations, QuestionnaireResponses, ...) is dropped as it is read.
_BILLING_TYPES = frozenset(
    {"Patient", "Encounter", "Consent", "CarePlan", "CareTeam", "Condition", "Coverage"}
)
# Of a Patient, billing reads the MRN and whether (and when) the patient died.
_PATIENT_FIELDS = ("resourceType", "id", "identifier", "deceasedBoolean", "deceasedDateTime")
# Input bytes per bucket. Smaller than apply's: billing keeps whole Encounters, about ten
# times their JSON size once decoded, so 8 MB of input is a bucket of well under 100 MB.
_BUCKET_BYTES = 8 * 1024 * 1024


def patients_with_time(
    resources: Iterable[Resource], month: Month, rules: BillingRules
) -> set[str]:
    """The patients with care-management time in ``month`` (the practice's time zone)."""
    tz = ZoneInfo(rules.timezone)
    start, end = month.start(tz), month.end(tz)
    entries, _ = ledger_entries(
        (r for r in resources if r.get("resourceType") == "Encounter" and is_time_entry(r)), tz
    )
    return {e.patient for e in entries if e.start < end and e.end > start}


@dataclass
class FilesMonth:
    """A month closed from files: the patient-months, the time not counted, the read errors
    and the billing Encounters found (to find bills whose time entries are all gone)."""

    months: list[PatientMonth]
    rejected: list[Rejected]
    errors: list[SourceError]
    bills: list[Resource]


def close_files(
    paths: list[Path], month: Month, rules: BillingRules, only: set[str] | None = None
) -> FilesMonth:
    """Close ``month`` from files, memory flat in the input size, as ``apply`` reads them.

    A patient's resources may be anywhere in the input (bulk export writes one file per
    type), so they are partitioned by a hash of the patient into buckets — spilled to
    temporary NDJSON files above 8 MB of input — and each bucket is closed on its own: peak
    memory is about one bucket of the billing types, not the whole export. Only the types
    billing reads are kept, and of a Patient only its MRN and death.
    """
    errors: list[SourceError] = []
    bills: list[Resource] = []
    total = sum(p.stat().st_size for p in expand_paths(paths) if p.is_file())
    count = max(1, -(-total // _BUCKET_BYTES))
    closed: list[tuple[str, list[PatientMonth], list[Rejected]]] = []
    with tempfile.TemporaryDirectory(prefix="bhi-fhir-bill-") as tmp:
        buckets = PatientBuckets(count, Path(tmp) if count > 1 else None)
        # Every line is decoded (not read_resources' ``only``, which skips lines that cannot
        # hold a wanted type unread): a broken line is reported whatever it was meant to be.
        for item in read_resources(paths, local_references=True):
            if isinstance(item, SourceError):
                errors.append(item)
                continue
            if item["resourceType"] not in _BILLING_TYPES:
                continue
            patient = patient_of(item)
            if patient is None or (only and patient not in only):
                continue
            if item["resourceType"] == "Patient":
                item = {k: item[k] for k in _PATIENT_FIELDS if k in item}
            elif item["resourceType"] == "Encounter" and bill_identifier(item) is not None:
                bills.append(item)
            buckets.add(patient, item, ("", None))
        for bucket in buckets:
            records = group_by_patient(resource for resource, _ in bucket)
            wanted = patients_with_time(
                (e for record in records.values() for e in record.encounters), month, rules
            )
            for patient in wanted:
                closed.append((patient, *close_month(records[patient], month, rules)))
    closed.sort(key=lambda item: item[0])  # the report's order: by patient, as read
    return FilesMonth(
        [m for _, months, _ in closed for m in months],
        [r for _, _, rejected in closed for r in rejected],
        errors,
        bills,
    )
