"""The FHIR JSON vocabulary alone: references and "patient of", dates and instants, ETags."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bhi_fhir.fhirjson import (
    EntryAnswer,
    add_full_url,
    contained,
    day,
    day_in,
    day_range,
    entry_answer,
    entry_answers,
    etag,
    etag_version,
    full_urls,
    instant,
    localize,
    moment,
    patient_of,
    reference,
    replaced_by,
)

REFS = "https://hl7.org/fhir/R4/references.html"
BUNDLE = "https://hl7.org/fhir/R4/bundle.html#references"
PATIENT = "https://hl7.org/fhir/R4/patient.html#links"
UUID = "urn:uuid:c5a17333-816d-683f-2549-f0f6c934c3e0"
URLS = {UUID: "Patient/c5a17333", "https://ehr/fhir/Patient/old-base": "Patient/7"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("Patient/1", "Patient/1", id="relative"),  # REFS literal reference
        pytest.param({"reference": "Patient/1"}, "Patient/1", id="reference-object"),
        pytest.param("Patient/1/_history/3", "Patient/1", id="versioned"),  # REFS
        pytest.param("https://ehr/fhir/Patient/1", "Patient/1", id="absolute"),  # REFS
        pytest.param("https://ehr/fhir/Patient/1/_history/3", "Patient/1", id="absolute-versioned"),
        pytest.param("http://ehr:8080/r4/Observation/a.b-1", "Observation/a.b-1", id="id-chars"),
        pytest.param(UUID, "Patient/c5a17333", id="urn-uuid-in-bundle"),  # BUNDLE fullUrl
        pytest.param("urn:uuid:not-in-this-bundle", None, id="urn-uuid-unknown"),  # BUNDLE
        pytest.param("urn:oid:1.2.3", None, id="urn-oid-unknown"),
        # BUNDLE: an absolute fullUrl resolves to its entry even where its path says otherwise
        pytest.param("https://ehr/fhir/Patient/old-base", "Patient/7", id="absolute-fullurl"),
        pytest.param("#p1", "#p1", id="contained"),  # REFS contained resources
        pytest.param("#", None, id="contained-empty"),
        pytest.param("Patient?identifier=x|1", None, id="conditional"),  # REFS, transaction only
        pytest.param("patient/1", None, id="type-lowercase"),
        pytest.param("Patient", None, id="type-only"),
        pytest.param("", None, id="empty"),
        pytest.param({"display": "Ann"}, None, id="display-only"),
        pytest.param(42, None, id="not-a-string"),
        pytest.param(None, None, id="none"),
    ],
)
def test_reference(value: Any, expected: str | None) -> None:
    assert reference(value, URLS) == expected


def test_reference_without_a_map_leaves_urn_unresolved() -> None:  # BUNDLE
    assert reference(UUID) is None


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        pytest.param({"resourceType": "Patient", "id": "1"}, "Patient/1", id="patient-itself"),
        pytest.param({"resourceType": "Patient"}, None, id="patient-without-id"),
        pytest.param({"resourceType": "Observation", "subject": {"reference": "Patient/1"}},
                     "Patient/1", id="subject"),
        pytest.param({"resourceType": "Observation", "subject": {"reference": "Group/1"}},
                     None, id="subject-not-a-patient"),
        pytest.param({"resourceType": "Consent", "patient": {"reference": "Patient/2"}},
                     "Patient/2", id="patient"),
        pytest.param({"resourceType": "Task", "for": {"reference": "Patient/3/_history/1"}},
                     "Patient/3", id="for-versioned"),
        pytest.param({"resourceType": "Coverage",
                      "beneficiary": {"reference": "https://ehr/fhir/Patient/4"}},
                     "Patient/4", id="beneficiary-absolute"),
        pytest.param({"resourceType": "Encounter", "subject": {"reference": UUID}},
                     "Patient/c5a17333", id="subject-urn-uuid"),
        pytest.param({"resourceType": "Provenance",
                      "target": [{"reference": "Encounter/9"}, {"reference": UUID},
                                 {"reference": "Patient/other"}]},
                     "Patient/c5a17333", id="provenance-first-patient-target"),
        pytest.param({"resourceType": "Provenance", "target": [{"reference": "Encounter/9"}]},
                     None, id="provenance-no-patient-target"),
        pytest.param({"resourceType": "Medication"}, None, id="no-patient"),
    ],
)
def test_patient_of(resource: dict[str, Any], expected: str | None) -> None:
    assert patient_of(resource, URLS) == expected


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        pytest.param([{"type": "replaced-by", "other": {"reference": "Patient/new"}}],
                     "Patient/new", id="replaced-by"),  # PATIENT
        pytest.param([{"type": "replaced-by", "other": {"reference": "https://ehr/Patient/n"}}],
                     "Patient/n", id="replaced-by-absolute"),
        pytest.param([{"type": "replaces", "other": {"reference": "Patient/old"}}],
                     None, id="replaces-is-the-other-direction"),  # PATIENT
        pytest.param([{"type": "seealso", "other": {"reference": "Patient/x"}}],
                     None, id="seealso"),
        pytest.param([{"type": "replaced-by", "other": {"reference": "RelatedPerson/r"}}],
                     None, id="replaced-by-not-a-patient"),
        pytest.param([], None, id="no-link"),
    ],
)
def test_replaced_by(links: list[dict[str, Any]], expected: str | None) -> None:
    assert replaced_by({"resourceType": "Patient", "id": "1", "link": links}) == expected


def test_full_urls_map_each_entry_with_an_id() -> None:  # BUNDLE
    entries = [
        {"fullUrl": UUID, "resource": {"resourceType": "Patient", "id": "p"}},
        {"fullUrl": "urn:uuid:no-id", "resource": {"resourceType": "Task"}},
        {"resource": {"resourceType": "Encounter", "id": "e"}},
        "not an entry",
    ]
    assert full_urls(entries) == {UUID: "Patient/p"}


def test_localize_rewrites_bundle_references_and_shares_the_rest() -> None:  # BUNDLE
    urls: dict[str, str] = {}
    add_full_url(urls, UUID, {"resourceType": "Patient", "id": "p"})
    code = {"coding": [{"code": "x"}]}
    report = {
        "resourceType": "DiagnosticReport",
        "subject": {"reference": UUID, "display": "Ann"},
        "result": [{"reference": "urn:uuid:elsewhere"}, {"reference": "Observation/1"}],
        "code": code,
    }
    out = localize(report, urls)
    assert out["subject"] == {"reference": "Patient/p", "display": "Ann"}
    assert out["result"] is report["result"] and out["code"] is code
    assert report["subject"]["reference"] == UUID  # the input is not changed
    assert localize(report, {}) is report


def test_contained() -> None:  # REFS contained resources
    inner = {"resourceType": "Medication", "id": "m"}
    resource = {"resourceType": "MedicationRequest", "contained": [inner]}
    assert contained(resource, "#m") is inner
    assert contained(resource, "#n") is None
    assert contained(resource, "Medication/m") is None


# ------------------------------------------------------------------------- dates and instants

DATATYPES = "https://hl7.org/fhir/R4/datatypes.html"  # date, dateTime, instant
VERSIONING = "https://hl7.org/fhir/R4/http.html#versioning"
LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-11-26", date(2026, 11, 26), id="date"),  # DATATYPES date
        pytest.param("2026-11-26T23:30:00-08:00", date(2026, 11, 26), id="datetime-own-day"),
        pytest.param("2026-11", None, id="year-month"),  # DATATYPES partial date
        pytest.param("2026", None, id="year"),
        pytest.param("2026-02-30", None, id="no-such-day"),
        pytest.param("", None, id="empty"),
        pytest.param(20261126, None, id="not-a-string"),
    ],
)
def test_day(value: object, expected: date | None) -> None:
    assert day(value) == expected


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        # DATATYPES dateTime: with a time, an offset SHALL be given; read in the practice's zone
        pytest.param("2026-11-27T07:30:00Z", LA, date(2026, 11, 26), id="utc-morning-is-la-eve"),
        pytest.param("2026-11-27T08:00:00Z", LA, date(2026, 11, 27), id="utc-8am-is-la-midnight"),
        pytest.param("2026-11-27T07:59:59Z", LA, date(2026, 11, 26), id="one-second-before"),
        pytest.param("2026-11-27", LA, date(2026, 11, 27), id="bare-date-as-written"),
        pytest.param("2026-11-27T07:30:00", LA, date(2026, 11, 27), id="no-offset-as-written"),
        pytest.param("2026-11-27T07:30:00Z", None, date(2026, 11, 27), id="no-zone-as-written"),
        pytest.param("2026-11", LA, None, id="year-month"),
    ],
)
def test_day_in(value: str, zone: ZoneInfo | None, expected: date | None) -> None:
    assert day_in(value, zone) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026", (date(2026, 1, 1), date(2026, 12, 31)), id="year"),  # DATATYPES
        pytest.param("2024-02", (date(2024, 2, 1), date(2024, 2, 29)), id="leap-february"),
        pytest.param("2026-02", (date(2026, 2, 1), date(2026, 2, 28)), id="february"),
        pytest.param("2026-11-26", (date(2026, 11, 26),) * 2, id="day"),
        pytest.param("2026-11-26T10:00:00Z", (date(2026, 11, 26),) * 2, id="datetime"),
        pytest.param("2026-13", None, id="month-13"),
        pytest.param("2026-00", None, id="month-0"),
        pytest.param("2026/11", None, id="wrong-separator"),
        pytest.param("26", None, id="two-digit-year"),
        pytest.param(None, None, id="none"),
    ],
)
def test_day_range(value: object, expected: tuple[date, date] | None) -> None:
    assert day_range(value) == expected


@pytest.mark.parametrize(
    ("value", "end", "expected"),
    [
        pytest.param("2026", False, datetime(2026, 1, 1, tzinfo=LA), id="year-start"),
        pytest.param("2026", True, datetime(2027, 1, 1, tzinfo=LA), id="year-end"),
        pytest.param("2026-11", False, datetime(2026, 11, 1, tzinfo=LA), id="month-start"),
        pytest.param("2026-12", True, datetime(2027, 1, 1, tzinfo=LA), id="december-end"),
        pytest.param("2026-11-26", False, datetime(2026, 11, 26, tzinfo=LA), id="day-start"),
        pytest.param("2026-11-26", True, datetime(2026, 11, 27, tzinfo=LA), id="day-end"),
        pytest.param("2026-11-26T10:00:00Z", False, datetime(2026, 11, 26, 10, tzinfo=UTC),
                     id="instant-keeps-offset"),
        pytest.param("2026-11-26T10:00:00", True, datetime(2026, 11, 26, 10, tzinfo=LA),
                     id="no-offset-in-zone"),
        pytest.param("2026-11-26T", False, None, id="broken-time"),
        pytest.param("2026-13", False, None, id="month-13"),
        pytest.param("", False, None, id="empty"),
        pytest.param(None, False, None, id="none"),
    ],
)
def test_moment(value: object, end: bool, expected: datetime | None) -> None:
    assert moment(value, LA, end=end) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC), id="z"),
        pytest.param("2026-11-26T10:00:00+00:00", datetime(2026, 11, 26, 10, tzinfo=UTC),
                     id="offset"),
        pytest.param("2026-11-26T10:00:00", datetime(2026, 11, 26, 10, tzinfo=UTC),
                     id="stored-without-offset-is-utc"),
    ],
)
def test_instant(value: str, expected: datetime) -> None:
    assert instant(value) == expected


def test_instant_refuses_what_is_not_one() -> None:
    with pytest.raises(ValueError):
        instant("yesterday")


@pytest.mark.parametrize(
    ("version", "tag"),
    [
        pytest.param(3, 'W/"3"', id="int"),  # VERSIONING: If-Match W/"<versionId>"
        pytest.param("3", 'W/"3"', id="str"),
        pytest.param('W/"3"', 'W/"3"', id="already-weak"),
        pytest.param('"3"', '"3"', id="strong-kept"),
    ],
)
def test_etag(version: str | int, tag: str) -> None:
    assert etag(version) == tag


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        pytest.param('W/"3"', "3", id="weak"),  # VERSIONING
        pytest.param('"3"', "3", id="strong"),
        pytest.param("3", "3", id="bare"),
        pytest.param(None, "", id="none"),
        pytest.param("", "", id="empty"),
    ],
)
def test_etag_version(tag: str | None, version: str) -> None:
    assert etag_version(tag) == version
    if version:
        assert etag_version(etag(version)) == version


# --- batch/transaction answers (R4 Bundle.entry.response; http.html#transaction) -------------


@pytest.mark.parametrize(
    ("entry", "ok", "created", "location"),
    [
        pytest.param({"response": {"status": "201 Created", "location": "Task/1/_history/1"}},
                     True, True, "Task/1/_history/1", id="201-created"),
        pytest.param({"response": {"status": "201"}}, True, True, "", id="201-bare-code"),
        pytest.param({"response": {"status": "200 OK", "location": "Task/1/_history/1"}},
                     True, False, "Task/1/_history/1", id="200-conditional-create-matched"),
        pytest.param({"response": {"status": " 204 No Content "}}, True, False, "",
                     id="204-space-trimmed"),
        pytest.param({"response": {"status": "412 Precondition Failed"}}, False, False, "",
                     id="412-refused"),
        pytest.param({"response": {}}, False, False, "", id="no-status"),
        pytest.param({}, False, False, "", id="no-response"),
        pytest.param("not an entry", False, False, "", id="not-an-entry"),
    ],
)  # fmt: skip
def test_entry_answer(entry: object, ok: bool, created: bool, location: str) -> None:
    answer = entry_answer(entry)
    assert (answer.ok, answer.created, answer.location) == (ok, created, location)


def test_entry_answers_in_order() -> None:
    response = {"resourceType": "Bundle", "type": "transaction-response", "entry": [
        {"response": {"status": "201 Created", "location": "Encounter/9/_history/1"}},
        {"response": {"status": "200 OK"}},
    ]}  # fmt: skip
    assert entry_answers(response) == [
        EntryAnswer("201 Created", "Encounter/9/_history/1"), EntryAnswer("200 OK", "")]
    assert entry_answers({"resourceType": "Bundle"}) == []
