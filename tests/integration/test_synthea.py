"""A fixed-seed Synthea population on the real HAPI: what a clinic would expect bhi-fhir to do.

The population (``tools/synthea/generate``, seed 42, 30 living patients plus those who died,
ages 12-80, 10 years of history; ``.ci/run`` generates it, cached in tools/synthea/out/) holds
screens as EHRs hold them: a DiagnosticReport and one total Observation per PHQ-2, PHQ-9, PHQ-A,
GAD-7 and AUDIT-C (Synthea 3.3 output). "Today" is a week after the newest positive depression or
anxiety screen of a living patient, and the population is taken as the clinic knew it that day
(``tools/synthea/as_of.py``), so the look-back window holds some positives and not others;
every id gets a per-run prefix, so runs sharing a server never touch each other's resources.

The session fixture loads it into the server under test (transactions, every resource tagged
with the run tag and a case tag, deleted by the case tag afterwards), then each test checks one
thing a clinic expects: the screens are read, recent positives are engaged, old ones are not,
the deceased get no work, Synthea's own care plans enroll nobody, the sync writes what it says.
Without a generated population the tests skip and print why (CI fails instead: .ci/run checks
that they ran).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.instruments import sex_of
from bhi_fhir.instruments.observation_scores import scores_from_observations
from bhi_fhir.instruments.result import Score
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.sync import RunReport, SyncConfig, run_sync
from bhi_fhir.timeline import LABELS, patient_of
from smart_app.data import FhirSource
from smart_app.views_model import patient_view, record_status
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.sync.clinic import delete_tagged, seed, team

_register()
ROOT = Path(__file__).resolve().parents[2]
SYNTHEA = ROOT / "tools" / "synthea"
PLAN = ROOT / "examples" / "practice-plan.toml"
# The population .ci/run generates (BHI_SYNTHEA_POPULATION=30, bulk NDJSON only).
RUN = Path(os.environ.get("BHI_SYNTHEA_RUN", SYNTHEA / "out" / "42-30"))
Resource = dict[str, Any]

# Upload order: what a resource references is on the server before it (HAPI checks
# references); deletion goes the other way. Stubs stand in for the dropped Practitioner,
# Location, Organization and CareTeam resources Synthea's records point at.
UPLOAD_ORDER = ("Patient", "Encounter", "Condition", "CarePlan", "Observation",
                "DiagnosticReport", "Procedure")  # fmt: skip
STUB_TYPES = ("Practitioner", "Location", "Organization", "CareTeam")
WRITTEN_TYPES = ("Task", "ServiceRequest", "CarePlan", "Observation", "Encounter")
# Rules that act on a screen only within screening.lookback_days (README "Who is worked").
LOOKBACK_RULES = ("engage", "consent", "phq9-followup", "brief-intervention")
# Rules that need an enrolled patient: nobody is, since Synthea writes no bhi-fhir CarePlan.
ENROLLED_RULES = ("outreach", "psychiatric-review", "relapse-prevention")
ENGAGE_INSTRUMENTS = ("phq9", "phqa", "gad7", "epds")  # the engage rule's screens


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SYNTHEA / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _slim() -> Path:
    slim = RUN / "slim" / "bulk"
    if not (slim / "Patient.ndjson").exists():
        reason = (f"no Synthea population at {slim}: run tools/synthea/generate with "
                  "BHI_SYNTHEA_POPULATION=30 BHI_SYNTHEA_FORMATS=bulk (needs Java 17 and Maven)")
        print(f"test_synthea skipped: {reason}")
        pytest.skip(reason)
    return slim


def _read(folder: Path) -> list[Resource]:
    out: list[Resource] = []
    for path in sorted(folder.glob("*.ndjson")):
        with path.open() as lines:
            out += [json.loads(line) for line in lines if line.strip()]
    return out


def _scores(resources: list[Resource]) -> dict[str, list[Score]]:
    """Each patient's screens, oldest first, read the way read_screens.py reads them."""
    by_patient: dict[str, list[Resource]] = defaultdict(list)
    patients = {f"Patient/{r['id']}": r for r in resources if r["resourceType"] == "Patient"}
    for r in resources:
        if r["resourceType"] in ("Observation", "DiagnosticReport") and (p := patient_of(r)):
            by_patient[p].append(r)
    return {p: scores_from_observations(rs, patient_sex=sex_of(patients.get(p)))
            for p, rs in by_patient.items()}


def _latest(scores: list[Score]) -> dict[str, Score]:
    latest: dict[str, Score] = {}
    for score in scores:  # oldest first: the last one per instrument wins
        if score.instrument is not None:
            latest[score.instrument] = score
    return latest


def _today(slim: Path) -> date:
    """A week after the newest positive PHQ-9/PHQ-A/GAD-7/EPDS screen of a living patient."""
    resources = _read(slim)
    dead = {f"Patient/{r['id']}" for r in resources
            if r["resourceType"] == "Patient" and (r.get("deceasedDateTime")
                                                     or r.get("deceasedBoolean"))}
    days = [s.authored[:10] for p, scores in _scores(resources).items() if p not in dead
            for s in scores if s.instrument in ENGAGE_INSTRUMENTS and s.positive and s.authored]
    assert days, "the population holds no positive depression or anxiety screen"
    return date.fromisoformat(max(days)) + timedelta(days=7)


@dataclass
class Population:
    folder: Path  # as-of NDJSON, what apply reads
    today: date
    resources: list[Resource]
    uploaded: Counter[str]  # by type, stubs included
    case: str  # the case tag's code
    patients: dict[str, Resource]  # "Patient/<id>" → Patient
    scores: dict[str, list[Score]]


def _own_ids(folder: Path, prefix: str) -> None:
    """Give every resource of ``folder`` an id of this run's own (``prefix`` + Synthea's id),
    references along, so two runs on one server never write the same resources; a conditional
    reference (``Practitioner?identifier=…``) becomes a plain one to a stub of this run."""

    def own(match: re.Match[str]) -> str:
        target = match[1]
        if "?" in target:
            kind = target.split("?", 1)[0]
            target = f"{kind}/{hashlib.sha256(target.encode()).hexdigest()[:16]}"
        kind, _, rid = target.partition("/")
        return f'"reference": "{kind}/{prefix}{rid}"'

    for path in sorted(folder.glob("*.ndjson")):
        lines = path.read_text().splitlines()
        with path.open("w") as out:
            for line in lines:
                resource = json.loads(re.sub(r'"reference": "([^"#]+)"', own, line))
                resource["id"] = f"{prefix}{resource['id']}"
                out.write(json.dumps(resource) + "\n")


def _stub(reference: str, tags: list[dict[str, str]]) -> tuple[str, Resource]:
    """A placeholder for a resource Synthea's records point at but slim.py dropped."""
    kind, _, rest = reference.partition("?") if "?" in reference else reference.partition("/")
    resource: Resource = {"resourceType": kind, "meta": {"tag": tags}}
    if "?" in reference:  # Practitioner?identifier=system|value: a conditional create
        system, _, value = rest.removeprefix("identifier=").partition("|")
        resource["identifier"] = [{"system": system, "value": value}]
        return reference, resource
    resource["id"] = rest
    return f"{kind}/{rest}", resource


def _transaction(base: str, http: httpx.Client, entries: list[Resource]) -> None:
    for start in range(0, len(entries), 500):
        bundle = {"resourceType": "Bundle", "type": "transaction",
                  "entry": entries[start : start + 500]}
        response = http.post(base, json=bundle)
        assert response.status_code == 200, response.text[:2000]


def _upload(base: str, resources: list[Resource], tags: list[dict[str, str]]) -> Counter[str]:
    uploaded: Counter[str] = Counter()
    stubs: dict[str, tuple[str, Resource]] = {}
    for resource in resources:
        for ref in re.findall(r'"reference": "([^"]+)"', json.dumps(resource)):
            if ref.split("/")[0].split("?")[0] in STUB_TYPES and ref not in stubs:
                stubs[ref] = _stub(ref, tags)
    with httpx.Client(timeout=600, headers={"Content-Type": "application/fhir+json"}) as http:
        stub_entries = [{"resource": r, "request": {"method": "PUT", "url": url}}
                        for url, r in stubs.values()]
        _transaction(base, http, stub_entries)
        uploaded.update(r["resourceType"] for _, r in stubs.values())
        for kind in UPLOAD_ORDER:
            entries = []
            for resource in resources:
                if resource["resourceType"] != kind:
                    continue
                copy = {**resource, "meta": {**(resource.get("meta") or {}), "tag": tags}}
                entries.append({"resource": copy,
                                "request": {"method": "PUT", "url": f"{kind}/{resource['id']}"}})
            _transaction(base, http, entries)
            uploaded[kind] += len(entries)
    return uploaded


@pytest.fixture(scope="session")
def population(
    fhir_base_url: str, run_tag: RunTag, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Population]:
    slim = _slim()
    today = _today(slim)
    folder = tmp_path_factory.mktemp("synthea-as-of")
    _load("as_of").write_as_of(slim, folder, today)
    case = f"synthea-{uuid.uuid4().hex}"
    _own_ids(folder, f"s{case[8:16]}-")
    resources = _read(folder)
    tags = [{"system": TAG_SYSTEM, "code": run_tag.code}, {"system": CASE_SYSTEM, "code": case}]
    kinds = ("Patient", *STUB_TYPES, *UPLOAD_ORDER[1:], "Task", "ServiceRequest", "Provenance")
    for kind in kinds:  # the run tag's own clean-up, should ours stop half-way
        if kind not in run_tag.types_used:
            run_tag.types_used.append(kind)
    # The practice plan's team and referral directory, as the EHR holds them (doctor checks
    # them; Task.owner and the referrals point at them).
    staff = team()
    for resource in staff:
        resource["meta"] = {"tag": tags}
    if "PractitionerRole" not in run_tag.types_used:
        run_tag.types_used.append("PractitionerRole")
    try:
        seed(fhir_base_url, staff)
        uploaded = _upload(fhir_base_url, resources, tags)
        yield Population(
            folder, today, resources, uploaded, case,
            {f"Patient/{r['id']}": r for r in resources if r["resourceType"] == "Patient"},
            _scores(resources),
        )
    finally:
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case}", reversed(kinds))
        delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case}", ("PractitionerRole",))


def _deceased(patient: Resource, today: date) -> bool:
    if patient.get("deceasedBoolean") is True:
        return True
    death = patient.get("deceasedDateTime")
    return isinstance(death, str) and death[:10] <= today.isoformat()


def _expected(pop: Population) -> dict[str, set[str]]:
    """Which living patients each look-back rule should reach, from the screens alone."""
    plan = load_practice_plan(PLAN).screening
    window = plan.lookback_days
    expected: dict[str, set[str]] = {rule: set() for rule in LOOKBACK_RULES}
    for patient, scores in pop.scores.items():
        if _deceased(pop.patients[patient], pop.today):
            continue
        latest = _latest(scores)

        def recent(score: Score | None) -> bool:
            return (score is not None and score.positive is True and score.authored is not None
                    and (pop.today - date.fromisoformat(score.authored[:10])).days <= window)

        if any(recent(latest.get(i)) for i in ENGAGE_INSTRUMENTS):
            expected["engage"].add(patient)
            expected["consent"].add(patient)  # Synthea writes no treatment Consent
        phq2, phq9 = latest.get("phq2"), latest.get("phq9")
        if recent(phq2) and (phq9 is None or (phq9.authored or "")[:10]
                             < str(phq2 and phq2.authored)[:10]):
            expected["phq9-followup"].add(patient)
        if recent(latest.get("auditc")):
            expected["brief-intervention"].add(patient)
    return expected


@pytest.fixture(scope="session")
def applied(population: Population, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("synthea-apply") / "bundle.json"
    result = CliRunner().invoke(app, [
        "apply", str(population.folder), "--plan", str(PLAN), "--today",
        population.today.isoformat(), "--out", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _fired(applied: dict[str, Any]) -> dict[str, set[str]]:
    fired: dict[str, set[str]] = defaultdict(set)
    for patient in applied["patients"]:
        for action in patient["actions"]:
            fired[action["rule"]].add(patient["patient"])
    return fired


def test_the_population_is_what_was_asked_for(population: Population) -> None:
    """Adults and teens, some deceased, screens of every kind Synthea writes."""
    living = [p for p in population.patients.values() if not _deceased(p, population.today)]
    assert 30 <= len(population.patients) <= 60
    assert len(living) < len(population.patients), "no deceased patient in the population"
    births = [p["birthDate"] for p in living]
    teen = (population.today - timedelta(days=18 * 365)).isoformat()
    assert any(b > teen for b in births) and any(b < teen for b in births), "adults and teens"
    instruments = {s.instrument for scores in population.scores.values() for s in scores}
    assert {"phq2", "phq9", "gad7", "auditc"} <= instruments


def test_doctor_says_the_server_can_run_the_workflow(population: Population,
                                                       fhir_base_url: str,
                                                       plan_resources: list[str]) -> None:
    result = CliRunner().invoke(app, ["doctor", "--server", fhir_base_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["can_run"] is True


def test_apply_engages_recent_positives_and_nothing_older(
    population: Population, applied: dict[str, Any]
) -> None:
    """Every look-back rule reaches exactly the living patients whose latest screen is positive
    and inside screening.lookback_days; a positive older than that, or a negative, gets no
    work (README "Who is worked"; the plan's cut points)."""
    assert not applied["errors"], applied["errors"][:3]
    expected, fired = _expected(population), _fired(applied)
    assert expected["engage"], "today was chosen so that some positive is within the window"
    old = {p for p, scores in population.scores.items() if any(s.positive for s in scores)}
    assert old - expected["engage"], "and some positive is older than the window"
    for rule in LOOKBACK_RULES:
        assert fired.get(rule, set()) == expected[rule], rule


def test_apply_gives_the_deceased_no_work_and_enrolls_nobody(
    population: Population, applied: dict[str, Any]
) -> None:
    fired = _fired(applied)
    dead = {p for p, r in population.patients.items() if _deceased(r, population.today)}
    assert dead
    working = {p for rule, patients in fired.items() for p in patients}
    assert not dead & working, sorted(dead & working)
    # Synthea's own CarePlans (assess-plan, self-management, even a mental-health care plan)
    # are not bhi-fhir's BHI CarePlan: nobody is enrolled, so no rule for the enrolled fires.
    for rule in ENROLLED_RULES:
        assert not fired.get(rule), rule


def test_app_reads_the_same_screens_as_read_screens(population: Population,
                                                      fhir_base_url: str) -> None:
    """The app's patient view, from the server, holds every screen read_screens.py reads from
    the same NDJSON, per instrument; nobody is enrolled; the deceased are shown as such."""
    read_screens = _load("read_screens")
    expected = read_screens.summary(read_screens.from_bulk(population.folder))
    plan = load_practice_plan(PLAN)

    async def views() -> dict[str, Any]:
        source = FhirSource(fhir_base_url, "synthea-test", 60)
        ids = [ref.split("/", 1)[1] for ref in population.patients]
        found = await source.patients_resources(ids)
        return {f"Patient/{i}": patient_view(rs, population.today, plan)
                for i, rs in found.items()}

    shown = asyncio.run(views())
    assert set(shown) == set(population.patients)
    counts: Counter[str] = Counter()
    for view in shown.values():
        for score in view.facts.get("scores") or []:
            counts[LABELS.get(score.get("instrument"), str(score.get("instrument")))] += 1
    assert counts == Counter({k: row["screens"] for k, row in expected.items()})
    for ref, view in shown.items():
        assert view.facts.get("enrolled") is False and view.careplan is None, ref
        dead = _deceased(population.patients[ref], population.today)
        assert (record_status(view.facts) == "deceased") == dead, ref


def _by_rule(changes: list[dict[str, Any]]) -> Counter[str]:
    """Planned writes by rule (``enroll.careplan`` → ``enroll``); a dry run's unchanged
    resources are not writes."""
    return Counter(str(c["rule"]).split(".")[0] for c in changes
                   if c.get("change", "create") in ("create", "update"))


def test_sync_plans_what_apply_plans_and_writes_what_it_reports(
    population: Population, applied: dict[str, Any], fhir_base_url: str,
    run_tag: RunTag, tmp_path: Path
) -> None:
    """From the server, the sync plans for each patient what apply plans from the files (a dry
    run, per rule); then it writes, and what it says it created is what the server holds
    afterwards (searched by the run tag and the case tag, less what the fixture uploaded)."""
    tags = [(TAG_SYSTEM, run_tag.code), (CASE_SYSTEM, population.case)]
    def config(dry_run: bool) -> SyncConfig:
        return SyncConfig(
            server=fhir_base_url, plan_path=PLAN, today=population.today, dry_run=dry_run,
            state_url=f"sqlite:///{tmp_path / ('dry.db' if dry_run else 'state.db')}",
            # The defaults (25 patients per batch read, 30 s a request): the context read asks
            # only for what the workflow reads, not ten years of visits and procedures.
            where=[("_tag", f"{CASE_SYSTEM}|{population.case}")], tags=tags)

    dry: RunReport = asyncio.run(run_sync(config(True)))
    assert dry.status == "ok", dry.to_text()
    planned = {d["patient"]: _by_rule(d["changes"]) for d in dry.to_dict()["diff"]
               if d["patient"] in population.patients}
    expected = {p["patient"]: _by_rule(p["actions"]) for p in applied["patients"]
                if p["actions"]}
    assert {p: c for p, c in planned.items() if c} == expected
    report: RunReport = asyncio.run(run_sync(config(False)))
    assert report.status == "ok", report.to_text()
    held: Counter[str] = Counter()
    with httpx.Client(timeout=120, headers={"Cache-Control": "no-cache"}) as http:
        for kind in (*WRITTEN_TYPES, "Provenance"):
            page = http.get(f"{fhir_base_url}/{kind}", params={
                "_tag": [f"{TAG_SYSTEM}|{run_tag.code}", f"{CASE_SYSTEM}|{population.case}"],
                "_summary": "count"}).json()
            held[kind] = int(page["total"]) - population.uploaded.get(kind, 0)
    assert held["Provenance"] == report.provenance.get("created", 0), report.to_text()
    assert held.total() - held["Provenance"] == report.written.get("created", 0), (
        held, report.to_text())
    assert report.written.get("created", 0) >= sum(c.total() for c in expected.values()) > 0


def test_bill_finds_no_bhi_month_in_synthea_visits(population: Population) -> None:
    """Synthea records visits but no BHI care-management time (the CoCM/BHI codes
    need care-manager minutes, CMS MLN909432), so month close bills nothing and fails on nothing."""
    month = f"{population.today.year:04d}-{population.today.month:02d}"
    result = CliRunner().invoke(app, ["bill", "--month", month, "--input", str(population.folder),
                                      "--plan", str(PLAN), "--format", "json"])
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(result.stdout)
    assert report["errors"] == [] and report["patients"] == []


def test_measure_reads_the_server_as_it_reads_the_files(fhir_base_url: str,
                                                        population: Population) -> None:
    """The quality measures (CMS2, CMS159) decide every Synthea patient alike from the server
    (``measure --server``'s searches) and from the same records as files (``--input``)."""
    from bhi_fhir.fhir import FhirClient
    from bhi_fhir.measures.cli import Run, measure_files, measure_patient, read_server
    from bhi_fhir.measures.common import Period
    from bhi_fhir.measures.report import MEASURES

    period = Period.year(population.today.year)
    measures = list(MEASURES.values())
    files = measure_files([population.folder], measures, period)

    async def from_server() -> Run:
        run = Run()
        async with FhirClient(fhir_base_url) as fhir:
            by_patient = await read_server(fhir, period)
        for patient in sorted(set(by_patient) & set(population.patients)):
            measure_patient(patient, by_patient[patient], measures, period, {}, run)
        return run

    server = asyncio.run(from_server())
    for measure in measures:
        want = {o.patient: (o.populations, o.reason) for o in files.outcomes.get(measure.id, [])}
        got = {o.patient: (o.populations, o.reason) for o in server.outcomes.get(measure.id, [])}
        assert got == want, measure.id
    assert files.outcomes.get("CMS2"), "the population has CMS2 patients"


def test_report_counts_the_quality_measures_as_the_measure_command_does(
    population: Population, tmp_path: Path
) -> None:
    """``bhi-fhir report`` over the Synthea population: every figure is written, and its quality
    measures' denominators and numerators are the measure command's counts over the same files.
    Synthea writes no BHI enrollment, so the program figures say there is no patient yet."""
    from bhi_fhir.measures.cli import measure_files
    from bhi_fhir.measures.common import (
        DENOMINATOR,
        DENOMINATOR_EXCEPTION,
        DENOMINATOR_EXCLUSION,
        NUMERATOR,
        Period,
    )
    from bhi_fhir.measures.report import MEASURES

    year = population.today.year
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, [
        "report", "--period", str(year), "--input", str(population.folder), "--plan", str(PLAN),
        "--today", population.today.isoformat(), "--format", "json", "--output", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads(out.read_text())
    assert len(report["metrics"]) == 9 and report["enrolledPatients"] == 0
    measures = next(m for m in report["metrics"] if m["id"] == "measures")
    counts = {row[0].split(" ", 1)[0]: (row[1], row[2]) for row in measures["rows"]}
    files = measure_files([population.folder], list(MEASURES.values()), Period.year(year))
    for measure_id, outcomes in files.outcomes.items():
        # performance rate = numerator / (denominator - exclusions - exceptions) (eCQI CMS2)
        rated = [o.populations for o in outcomes if DENOMINATOR in o.populations
                 and not o.populations & {DENOMINATOR_EXCLUSION, DENOMINATOR_EXCEPTION}]
        if measure_id in counts:
            assert counts[measure_id] == (len(rated), sum(NUMERATOR in p for p in rated)), (
                measure_id, counts)
    assert counts["CMS2"][0] > 0, "the population has CMS2 patients"
