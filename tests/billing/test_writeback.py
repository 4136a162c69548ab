"""Re-computable month-close: an existing bill is left alone, updated (versioned) or reported."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from fhirclient.models.bundle import Bundle as StrictBundle

from bhi_fhir.billing.encounter import billing_encounter
from bhi_fhir.billing.ledger import Month, close_month, group_by_patient
from bhi_fhir.billing.writeback import bill_content, plan_write, write_bundle
from bhi_fhir.codes import BHI_IDENTIFIER

from .builders import BHCM2, PATIENT, RULES, chart, entry
from .sources import S41_G2214, S42, S72

RECORDED = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def month_of(*entries, month="2026-10"):
    record = group_by_patient([*chart(), *entries])[PATIENT]
    months, _ = close_month(record, Month.parse(month), RULES)
    return months[0]


def stored(month, version="1"):
    """The bill as the server holds it after writing ``month`` (id, version, a foreign tag)."""
    resource = copy.deepcopy(billing_encounter(month))
    resource["id"] = "bill1"
    resource["meta"] = {
        **resource["meta"],
        "versionId": version,
        "lastUpdated": "2026-11-02T10:00:00Z",
        "tag": [{"system": "urn:example:ehr", "code": "keep-me"}],
    }
    resource["account"] = [{"reference": "Account/a1"}]  # written by someone else
    return resource


def test_no_bill_yet_is_created():
    write = plan_write(month_of(entry("2026-10-05 10:00", 40)), None, RECORDED)
    assert write.action == "create"
    encounter, provenance = (e["resource"] for e in write.entries)
    assert encounter["resourceType"] == "Encounter"
    assert write.entries[0]["request"]["ifNoneExist"].startswith("identifier=")
    assert provenance["meta"]["tag"][0]["code"] == "billing-cocm-p1-2026-10"
    assert provenance["activity"]["coding"][0]["code"] == "CREATE"


def test_same_bill_writes_nothing():
    month = month_of(entry("2026-10-05 10:00", 40))
    write = plan_write(month, stored(month), RECORDED)
    assert write.action == "unchanged" and write.entries == []


def test_corrected_entry_with_the_same_minutes_writes_nothing():
    """Time moved within the month: same minutes, same codes, same people → same bill."""
    before = month_of(entry("2026-10-05 10:00", 40))
    after = month_of(entry("2026-10-07 15:00", 40))
    assert plan_write(after, stored(before), RECORDED).action == "unchanged"


# (minutes billed, minutes now, codes now, source): late or corrected time crossing a threshold.
LATE_TIME = [
    (80, 85, ["99492"], S42),  # 36–85 still 99492 — but the minutes changed
    (85, 86, ["99492", "99494"], S72),  # first +99494 at 86 (initial month)
    (115, 116, ["99492", "99494"], S42),  # 116–145: 99494 x2 (units change)
    (36, 35, ["G2214"], S41_G2214),  # corrected down: 99492 not reached → G2214 from 16
]


@pytest.mark.parametrize(("billed", "now", "codes", "source"), LATE_TIME)
def test_changed_month_is_a_versioned_update(billed, now, codes, source):
    old = month_of(entry("2026-10-05 10:00", billed))
    new = month_of(entry("2026-10-05 10:00", now))
    write = plan_write(new, stored(old, version="3"), RECORDED)
    assert write.action == "update", source
    assert [c.code for c in new.codes] == codes, source
    assert "minutes" in write.changes
    (put, prov) = write.entries
    assert put["request"] == {"method": "PUT", "url": "Encounter/bill1", "ifMatch": 'W/"3"'}
    resource = put["resource"]
    assert resource["id"] == "bill1"
    assert resource["length"]["value"] == now
    assert bill_content(resource) == bill_content(billing_encounter(new))
    # what billing does not manage is kept; the server's version bookkeeping is not sent
    assert resource["account"] == [{"reference": "Account/a1"}]
    assert resource["meta"]["tag"] == [{"system": "urn:example:ehr", "code": "keep-me"}]
    assert "versionId" not in resource["meta"] and "lastUpdated" not in resource["meta"]
    provenance = prov["resource"]
    key = "billing-cocm-p1-2026-10-v4"
    assert provenance["meta"]["tag"] == [{"system": BHI_IDENTIFIER, "code": key}]
    assert prov["request"]["ifNoneExist"] == f"_tag={BHI_IDENTIFIER}|{key}"
    assert provenance["target"] == [{"reference": "Encounter/bill1/_history/4"}]
    assert provenance["activity"]["coding"][0]["code"] == "UPDATE"
    assert len(provenance["entity"]) == 1


def test_units_alone_changing_is_an_update():
    """116 → 146 minutes: 99494 x2 → x3 (CPT midpoint rule one unit per further 30 minutes)."""
    old = month_of(entry("2026-10-05 10:00", 116))
    new = month_of(entry("2026-10-05 10:00", 146))
    write = plan_write(new, stored(old), RECORDED)
    assert write.action == "update", S42
    assert "codes" in write.changes


def test_new_care_manager_is_an_update():
    old = month_of(entry("2026-10-05 10:00", 40))
    new = month_of(entry("2026-10-05 10:00", 40), entry("2026-10-06 10:00", 0.5, clinician=BHCM2))
    write = plan_write(new, stored(old), RECORDED)
    assert write.action == "update"
    assert write.changes == ("participants",)


def test_month_no_longer_billable_is_reported_not_written():
    """Corrected down to 15 minutes: nothing reaches a code (CPT midpoint rule <16 nothing) — the
    bill on
    the server is reported as stale; withdrawing it is the billing office's decision."""
    old = month_of(entry("2026-10-05 10:00", 40))
    new = month_of(entry("2026-10-05 10:00", 15))
    assert not new.billable, S42
    write = plan_write(new, stored(old), RECORDED)
    assert write.action == "stale" and write.entries == []


def test_not_billable_without_bill_is_nothing():
    new = month_of(entry("2026-10-05 10:00", 15))
    assert plan_write(new, None, RECORDED).action == "none"


def test_update_bundle_is_strict_r4():
    old = month_of(entry("2026-10-05 10:00", 40))
    new = month_of(entry("2026-10-05 10:00", 90))
    created = plan_write(old, None, RECORDED)
    updated = plan_write(new, stored(old), RECORDED)
    StrictBundle(write_bundle([created, updated]))  # raises on any R4 violation


# ------------------------------------------------------------------ bills whose time is all gone

R4_ENCOUNTER_STATUS = (
    "FHIR R4 Encounter.status: entered-in-error 'this instance should not have been recorded' "
    "(https://hl7.org/fhir/R4/valueset-encounter-status.html)"
)


def _orphan_case(version="1", status="finished"):
    month = month_of(entry("2026-10-05 10:00", 40))
    bill = stored(month, version)
    bill["status"] = status
    return month, bill


@pytest.mark.parametrize(
    ("entries_now", "orphaned"),
    [
        ([], True),  # every entry deleted
        (["entered-in-error"], True),
        (["entered-in-error", "entered-in-error"], True),
        (["entered-in-error", "finished"], False),  # one entry left: a normal re-close
        (["finished"], False),
    ],
    ids=["all-deleted", "one-in-error", "all-in-error", "one-left", "unchanged"],
)
def test_bill_without_any_time_entry_left_is_proposed_for_cancellation(entries_now, orphaned):
    from bhi_fhir.billing.writeback import orphaned_bills

    _, bill = _orphan_case()
    resources = [*chart()]
    for n, status in enumerate(entries_now):
        resources.append(entry(f"2026-10-0{5 + n} 10:00", 40, status=status))
    record = group_by_patient(resources)[PATIENT]
    months, _ = close_month(record, Month(2026, 10), RULES)
    found = orphaned_bills([bill], months, Month(2026, 10))
    assert (found == [bill]) is orphaned, R4_ENCOUNTER_STATUS


def test_cancellation_is_a_versioned_update_with_provenance():
    from bhi_fhir.billing.writeback import plan_cancel

    _, bill = _orphan_case(version="3")
    write = plan_cancel(bill, Month(2026, 10), RECORDED)
    assert write.action == "cancel" and write.changes == ("status",)
    (put, provenance) = write.entries
    assert put["request"] == {"method": "PUT", "url": "Encounter/bill1", "ifMatch": 'W/"3"'}
    assert put["resource"]["status"] == "entered-in-error", R4_ENCOUNTER_STATUS
    assert put["resource"]["account"] == [{"reference": "Account/a1"}]  # others' data kept
    assert put["resource"]["type"] == bill["type"]  # what was billed stays readable
    prov = provenance["resource"]
    assert prov["target"] == [{"reference": "Encounter/bill1/_history/4"}]
    assert prov["activity"]["coding"][0]["code"] == "UPDATE"
    assert "withdrew" in prov["text"]["div"]
    assert prov["meta"]["tag"][0]["code"] == "billing-cocm-p1-2026-10-v4"
    assert provenance["request"]["ifNoneExist"].endswith("billing-cocm-p1-2026-10-v4")
    assert write.month.reasons[0].code == "no-time-entries"
    StrictBundle(write_bundle([write]))


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_cancelled_bill_is_not_cancelled_again(status):
    """Idempotent: once withdrawn, the bill is neither found again nor re-written."""
    from bhi_fhir.billing.writeback import orphaned_bills, plan_cancel

    _, bill = _orphan_case(version="4", status=status)
    assert orphaned_bills([bill], [], Month(2026, 10)) == []
    write = plan_cancel(bill, Month(2026, 10), RECORDED)
    assert write.action == "unchanged" and write.entries == []


def test_bills_of_other_months_are_not_touched():
    from bhi_fhir.billing.writeback import orphaned_bills

    _, bill = _orphan_case()
    assert orphaned_bills([bill], [], Month(2026, 11)) == []
    assert orphaned_bills([bill], [], Month(2026, 10)) == [bill]
