"""The registry read model: rows in the store equal the live registry's for the same record
and day (one computation, ``registry_row``), through a JSON round trip on each backend.

The clinic is the bundled synthetic one (examples/clinic); each case is one of its scenarios,
and the expected row is the live computation — the records read the way the live page reads
them (``read_records``) and ``registry_row`` — never a second copy of the rules.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from bhi_fhir.fhir import FhirClient
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.registry import build_registry, compute_rows, load_registry, refresh_patients
from bhi_fhir.registry.model import refresh_after_sync
from bhi_fhir.registry.reader import enrolled_ids, enrollment_searches, read_records
from bhi_fhir.registry.rows import MALFORMED_FLAG, enrolled_in
from bhi_fhir.store import Store
from bhi_fhir.store.registry import put_registry_rows, read_registry
from bhi_fhir.workflow.plan_settings import enrollment_rule
from tests.instruments.build import PHQ9, frequency, response
from tests.registry.fake_fhir import BASE, FakeFhir

TODAY = date(2026, 11, 26)  # the clinic's today (examples/clinic/README.md)
PLAN = load_practice_plan(examples_dir() / "practice-plan.toml")
FRESHNESS = ("read_at", "day", "refreshed_by")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _live(fake: FakeFhir, today: date = TODAY) -> dict[str, dict[str, Any]]:
    """The live registry: the enrolled search, the records, ``registry_row`` per patient (as
    the app's page computes it, ``compute_rows``)."""
    client = FhirClient(BASE, transport=fake.transport(), max_retries=0)
    try:
        ids = await enrolled_ids(client, enrollment_rule(PLAN))
        records = await read_records(client, ids)
    finally:
        await client.aclose()
    return compute_rows(records, today, PLAN)  # registry_row, a malformed record flagged


async def _build(store: Store, fake: FakeFhir) -> None:
    client = FhirClient(BASE, transport=fake.transport(), max_retries=0)
    try:
        await build_registry(store, BASE, client, today=TODAY, plan=PLAN)
    finally:
        await client.aclose()


async def _refresh(store: Store, fake: FakeFhir, *ids: str) -> dict[str, Any]:
    client = FhirClient(BASE, transport=fake.transport(), max_retries=0)
    try:
        return await refresh_patients(store, BASE, client, ids, today=TODAY, plan=PLAN,
                                      source="app")
    finally:
        await client.aclose()


def _stored(store: Store) -> dict[str, dict[str, Any]]:
    registry = load_registry(store, BASE, TODAY)
    return {r["id"]: {k: v for k, v in r.items() if k not in FRESHNESS} for r in registry.rows}


@pytest.fixture
def store(store_url: str) -> Any:
    opened = Store.open(store_url)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def clinic() -> FakeFhir:
    return FakeFhir.from_ndjson_dir(examples_dir() / "clinic")


# Scenario patients of the clinic (examples/generate_clinic.py); the flags are what the live
# computation gives them, checked here so a case cannot pass with an empty row.
CASES = [
    pytest.param("p00015", ["not improving"], "due", id="week9-25pct-not-improving"),
    pytest.param("p00016", [], "on target", id="week9-50pct-response"),
    pytest.param("p00017", [], "", id="week7-before-review-window"),
    pytest.param("p00018", [], "on target", id="week10-remission"),
    pytest.param("p00019", ["no contact 4 weeks"], "", id="week6-no-contact"),
    pytest.param("p00020", [], "", id="week3-on-track"),
]


@pytest.mark.parametrize(("patient", "flags", "review"), CASES)
def test_built_row_equals_the_live_row(
    store: Store, clinic: FakeFhir, patient: str, flags: list[str], review: str
) -> None:
    run(_build(store, clinic))
    live = run(_live(clinic))
    stored = _stored(store)
    assert stored[patient] == live[patient]
    assert (stored[patient]["flags"], stored[patient]["review_status"]) == (flags, review)


def test_the_built_registry_is_the_live_registry(store: Store, clinic: FakeFhir) -> None:
    run(_build(store, clinic))
    assert _stored(store) == run(_live(clinic))
    registry = load_registry(store, BASE, TODAY)
    assert registry.built_at is not None and registry.earlier_day == 0
    assert all(r["refreshed_by"] == "build" and r["day"] == TODAY.isoformat()
               for r in registry.rows)


def _crisis_response(patient: str) -> dict[str, Any]:
    # PHQ-9 item 9 ("thoughts that you would be better off dead") above 0: a same-day safety
    # assessment (Kroenke 2001; SAFE-T).
    qr = response(frequency(PHQ9, [2, 2, 2, 2, 1, 1, 1, 1, 1]), rid=f"crisis-{patient}",
                  patient=patient, canonical="http://loinc.org/q/44249-1")
    qr["authored"] = "2026-11-25T10:00:00Z"
    return qr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param("crisis", "crisis", id="phq9-item9-crisis-Kroenke-2001"),
        pytest.param("discharged", None, id="careplan-completed-leaves-the-registry"),
        pytest.param("malformed", MALFORMED_FLAG, id="unreadable-record-listed-flagged"),
    ],
)
def test_a_refresh_after_a_change_equals_the_live_row(
    store: Store, clinic: FakeFhir, change: str, expected: str | None
) -> None:
    fake = FakeFhir(clinic.resources)
    run(_build(store, fake))
    patient = "p00020"
    if change == "crisis":
        fake.put(_crisis_response(patient))
    elif change == "discharged":
        plan = next(r for r in fake.resources if r["resourceType"] == "CarePlan"
                    and r["subject"]["reference"] == f"Patient/{patient}")
        fake.put({**plan, "status": "completed"})
    else:
        record = next(r for r in fake.resources if r["resourceType"] == "Patient"
                      and r["id"] == patient)
        fake.put({**record, "name": "a string, not a list of HumanName"})
    result = run(_refresh(store, fake, f"Patient/{patient}"))
    stored = _stored(store)
    if expected is None:
        assert result == {patient: None} and patient not in stored
        assert patient not in run(_live(fake))
        return
    assert expected in stored[patient]["flags"]
    assert stored == run(_live(fake))  # the patient's row and everyone else's


def test_a_patient_enrolled_since_the_build_gets_a_row(store: Store, clinic: FakeFhir) -> None:
    fake = FakeFhir(clinic.resources)
    run(_build(store, fake))
    plan = copy.deepcopy(next(r for r in fake.resources if r["resourceType"] == "CarePlan"))
    newcomer = next(r["id"] for r in fake.resources if r["resourceType"] == "Patient"
                    and r["id"] not in _stored(store))
    plan.update(id="new-plan", subject={"reference": f"Patient/{newcomer}"})
    plan["identifier"] = [{**plan["identifier"][0], "value": f"enroll:{newcomer}"}]
    fake.put(plan)
    run(_refresh(store, fake, newcomer))
    assert _stored(store)[newcomer] == run(_live(fake))[newcomer]


def test_an_older_read_never_replaces_a_newer_row(store: Store) -> None:
    now = datetime.now(UTC)
    put_registry_rows(store, BASE, {"a": {"id": "a", "v": "new"}}, day="2026-11-26",
                      read_at=now, source="app")
    put_registry_rows(store, BASE, {"a": {"id": "a", "v": "old"}}, day="2026-11-26",
                      read_at=now - timedelta(seconds=5), source="sync")
    [row] = read_registry(store, BASE)
    assert (row.row["v"], row.source, row.read_at) == ("new", "app", now)
    put_registry_rows(store, BASE, {"a": {"id": "a", "v": "newer"}}, day="2026-11-27",
                      read_at=now + timedelta(seconds=1), source="sync")
    [row] = read_registry(store, BASE)
    assert (row.row["v"], row.day) == ("newer", "2026-11-27")


def test_rows_of_an_earlier_day_are_counted_and_servers_kept_apart(store: Store) -> None:
    now = datetime.now(UTC)
    put_registry_rows(store, BASE, {"a": {"id": "a"}}, day="2026-11-25", read_at=now,
                      source="sync")
    put_registry_rows(store, BASE, {"b": {"id": "b"}}, day="2026-11-26", read_at=now,
                      source="sync")
    put_registry_rows(store, "http://other/fhir", {"c": {"id": "c"}}, day="2026-11-26",
                      read_at=now, source="sync")
    registry = load_registry(store, BASE + "/", TODAY)  # a trailing slash names the same server
    assert sorted(r["id"] for r in registry.rows) == ["a", "b"]
    assert registry.earlier_day == 1 and registry.built_at is None


def test_an_ehr_plan_the_practice_rule_names_is_found_without_the_category(
    clinic: FakeFhir,
) -> None:
    # An EHR writing its own BHI CarePlans need not give them the mental-health category: the
    # practice plan's [enrollment] identifier system finds them (a search of their own).
    ehr = "urn:example:ehr-bhi-careplans"
    plan_rule = PLAN.model_copy(update={"enrollment": PLAN.enrollment.model_copy(
        update={"careplan_identifier_systems": [ehr]})})
    plan = copy.deepcopy(next(r for r in clinic.resources if r["resourceType"] == "CarePlan"))
    plan["identifier"] = [{"system": ehr, "value": "ehr-plan-1"}]
    plan["category"] = [{"coding": [{"system": "http://snomed.info/sct", "code": "734163000"}]}]
    patient = {"resourceType": "Patient", "id": plan["subject"]["reference"].split("/")[1]}
    rule = enrollment_rule(plan_rule)
    assert enrolled_in([patient, plan], rule)
    assert not enrolled_in([patient, plan], enrollment_rule(PLAN))
    assert enrollment_searches(rule)[1] == {"identifier": f"{ehr}|", "status": "active",
                                            "_count": "200"}


@pytest.mark.parametrize(
    ("status", "category", "enrolled"),
    [
        pytest.param("active", "718347000", True, id="active-bhi-plan"),
        pytest.param("completed", "718347000", False, id="completed-plan-not-enrolled"),
        pytest.param("active", "734163000", False, id="other-category-not-the-registry-search"),
    ],
)
def test_enrolled_in_matches_the_enrollment_search(
    clinic: FakeFhir, status: str, category: str, enrolled: bool
) -> None:
    plan = copy.deepcopy(next(r for r in clinic.resources if r["resourceType"] == "CarePlan"))
    plan["status"] = status
    plan["category"] = [{"coding": [{"system": "http://snomed.info/sct", "code": category}]}]
    patient = {"resourceType": "Patient", "id": plan["subject"]["reference"].split("/")[1]}
    assert enrolled_in([patient, plan], enrollment_rule(PLAN)) is enrolled
    assert bool(run(_live(FakeFhir([patient, plan])))) is enrolled


async def _after_sync(store: Store, fake: FakeFhir, *patients: str, dry_run: bool = False) -> None:
    client = FhirClient(BASE, transport=fake.transport(), max_retries=0)
    try:
        await refresh_after_sync(store, BASE, client, patients, today=TODAY, plan=PLAN,
                                 dry_run=dry_run)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("built", "dry_run", "requests"),
    [
        pytest.param(False, False, 0, id="registry-never-built-no-reads"),
        pytest.param(True, True, 0, id="dry-run-no-reads"),
        pytest.param(True, False, 1, id="in-use-one-batch"),
    ],
)
def test_sync_refreshes_only_a_registry_in_use(
    store: Store, clinic: FakeFhir, built: bool, dry_run: bool, requests: int
) -> None:
    fake = FakeFhir(clinic.resources)
    if built:
        run(_build(store, fake))
    fake.put(_crisis_response("p00020"))
    fake.requests = 0
    run(_after_sync(store, fake, "Patient/p00020", dry_run=dry_run))
    assert fake.requests == requests
    if requests:
        assert "crisis" in _stored(store)["p00020"]["flags"]


def test_a_failed_refresh_never_fails_the_sync(store: Store, clinic: FakeFhir) -> None:
    fake = FakeFhir(clinic.resources)
    run(_build(store, fake))
    before = _stored(store)

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"resourceType": "OperationOutcome", "issue": []})

    async def after() -> None:
        client = FhirClient(BASE, transport=httpx.MockTransport(refuse), max_retries=0)
        try:
            await refresh_after_sync(store, BASE, client, ["Patient/p00020"], today=TODAY,
                                     plan=PLAN)
        finally:
            await client.aclose()

    run(after())
    assert _stored(store) == before  # the older rows stay, with their read time
