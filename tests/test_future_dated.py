"""Nothing authored after "today" is a screen of today; "today" is the practice's day.

Dates follow FHIR R4 dateTime (https://hl7.org/fhir/R4/datatypes.html#dateTime): a value with
hours and minutes carries its time zone, a bare date or year(-month) has none. A screen is
future-dated when its day *in the practice's zone* (billing.timezone) is after ``today``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.timeline import TimelineSettings, build_timeline
from bhi_fhir.workflow.plan_settings import timeline_settings
from tests.workflow.helpers import PATIENT, ROOT, TODAY, plan, score

R4_DATETIME = "FHIR R4 dateTime, https://hl7.org/fhir/R4/datatypes.html#dateTime"
LA = ZoneInfo("America/Los_Angeles")

# (authored, practice zone, today, future?) — TODAY is 2026-11-26.
CASES = [
    pytest.param("2026-11-26", LA, TODAY, False, id="date-today"),
    pytest.param("2026-11-27", LA, TODAY, True, id="date-tomorrow"),
    pytest.param("2026-11-25", LA, TODAY, False, id="date-yesterday"),
    # 23:30 in Los Angeles is the 26th there though it is the 27th in UTC.
    pytest.param("2026-11-26T23:30:00-08:00", LA, TODAY, False, id="la-2330-before-midnight"),
    pytest.param("2026-11-27T00:00:00-08:00", LA, TODAY, True, id="la-midnight-after"),
    # The same instants written in UTC: the practice's zone decides the day.
    pytest.param("2026-11-27T07:30:00Z", LA, TODAY, False, id="utc-27th-is-26th-in-la"),
    pytest.param("2026-11-27T08:00:00Z", LA, TODAY, True, id="utc-0800-is-27th-in-la"),
    pytest.param("2026-11-27T07:30:00Z", UTC, TODAY, True, id="utc-practice-27th"),
    pytest.param("2026-11-26T23:59:59Z", UTC, TODAY, False, id="utc-practice-last-second"),
    # A dateTime with minutes but no seconds, as the brief writes it (read, not rejected).
    pytest.param("2026-11-26T23:30-08:00", LA, TODAY, False, id="la-no-seconds"),
    # Partial dates compare at their own precision.
    pytest.param("2026-11", LA, TODAY, False, id="this-month"),
    pytest.param("2026-12", LA, TODAY, True, id="next-month"),
    pytest.param("2026", LA, TODAY, False, id="this-year"),
    pytest.param("2027", LA, TODAY, True, id="next-year"),
    # The day rolls over: the 27th's response is today's once today is the 27th.
    pytest.param("2026-11-27", LA, date(2026, 11, 27), False, id="date-on-its-day"),
]


@pytest.mark.parametrize(("authored", "zone", "today", "future"), CASES)
def test_future_dated_screens_are_no_facts(
    authored: str, zone: ZoneInfo, today: date, future: bool
) -> None:
    # Source for every row: R4_DATETIME (offset rules) + the practice's billing.timezone.
    screen = replace(score("phq9", 15, ident="qr-edge"), authored=authored)
    settings = replace(timeline_settings(plan()), zone=zone)
    tl = build_timeline(PATIENT, [], [screen], today, settings)
    assert tl.future_dated == (1 if future else 0)
    assert ("phq9" in tl.facts["latest"]) is not future
    assert len(tl.facts["scores"]) == (0 if future else 1)


@pytest.mark.parametrize(
    ("authored", "zone", "day"),
    [
        pytest.param("2026-11-27T07:30:00Z", LA, "2026-11-26", id="utc-to-la"),
        pytest.param("2026-11-26T23:30:00-08:00", UTC, "2026-11-27", id="la-to-utc"),
        pytest.param("2026-11-26T23:30:00-08:00", None, "2026-11-26", id="no-zone-as-written"),
        pytest.param("2026-11-26", LA, "2026-11-26", id="bare-date-unmoved"),
    ],
)
def test_a_screens_day_is_its_day_in_the_practice_zone(
    authored: str, zone: ZoneInfo | None, day: str
) -> None:
    # R4_DATETIME: the offset says which instant; the practice's zone says which day.
    screen = replace(score("phq9", 15, ident="qr-day"), authored=authored)
    tl = build_timeline(PATIENT, [], [screen], date(2026, 11, 27), TimelineSettings(zone=zone))
    assert tl.facts["scores"][0]["date"] == day


def test_a_future_crisis_answer_does_not_open_a_crisis_today() -> None:
    # A screen dated tomorrow is a clock or data-entry error, not today's answer: counted only.
    screen = replace(score("phq9", 20, item9=3, ident="qr-tomorrow"), authored="2026-11-27")
    tl = build_timeline(PATIENT, [], [screen], TODAY, timeline_settings(plan()))
    assert (tl.facts["crises"], tl.future_dated) == ([], 1)


@pytest.mark.parametrize(
    ("now", "zone", "today"),
    [
        pytest.param(datetime(2026, 11, 27, 7, 59, tzinfo=UTC), "America/Los_Angeles",
                     "2026-11-26", id="la-before-midnight"),
        pytest.param(datetime(2026, 11, 27, 8, 0, tzinfo=UTC), "America/Los_Angeles",
                     "2026-11-27", id="la-at-midnight"),
        pytest.param(datetime(2026, 11, 27, 4, 59, tzinfo=UTC), "America/New_York",
                     "2026-11-26", id="ny-before-midnight"),
        pytest.param(datetime(2026, 11, 27, 5, 0, tzinfo=UTC), "America/New_York",
                     "2026-11-27", id="ny-at-midnight"),
        pytest.param(datetime(2026, 11, 26, 23, 59, tzinfo=UTC), "UTC", "2026-11-26",
                     id="utc-before-midnight"),
    ],
)
def test_today_is_the_practice_day(now: datetime, zone: str, today: str) -> None:
    # IANA tz database offsets (PST UTC-8, EST UTC-5 in late November).
    practice = plan().model_copy(update={"billing": plan().billing.model_copy(
        update={"timezone": zone})})
    assert practice.today(now).isoformat() == today


def test_apply_reports_future_dated_count(tmp_path: Path) -> None:
    _register()
    shutil.copytree(ROOT / "examples" / "clinic", tmp_path / "clinic")
    qrs = tmp_path / "clinic" / "QuestionnaireResponse.ndjson"
    first = json.loads(qrs.read_text().splitlines()[0])
    first["id"] = "tomorrow"
    first["authored"] = "2026-11-27T09:00:00-05:00"  # the 27th in New York (the plan's zone)
    qrs.write_text(qrs.read_text() + json.dumps(first) + "\n")
    args = [str(tmp_path / "clinic"), "--plan", str(ROOT / "examples" / "practice-plan.toml"),
            "--today", "2026-11-26"]
    result = CliRunner().invoke(app, ["apply", *args, "--format", "json"])
    assert json.loads(result.stdout)["futureDated"] == 1
    text = CliRunner().invoke(app, ["apply", *args]).stdout
    assert "future-dated: 1 screens after today" in text
    assert "tomorrow" not in text.split("future-dated")[1]  # a count, no reference (no PHI)


def test_the_app_asks_the_practice_plan_what_day_it_is() -> None:
    from types import SimpleNamespace

    from smart_app.views import today_of

    practice = plan().model_copy(update={"billing": plan().billing.model_copy(
        update={"timezone": "Pacific/Kiritimati"})})  # UTC+14: its day differs from UTC's
    state = SimpleNamespace(settings=SimpleNamespace(today=None), practice_plan=practice)
    request = SimpleNamespace(app=SimpleNamespace(state=state))
    assert today_of(request) == practice.today()  # type: ignore[arg-type]
    state.settings.today = "2026-11-26"  # a fixed demo/test day wins
    assert today_of(request) == TODAY  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "authored", "future"),
    [
        pytest.param("response", "2026-11-26T23:30:00-05:00", False, id="qr-ny-2330-today"),
        pytest.param("response", "2026-11-27T00:00:00-05:00", True, id="qr-ny-midnight-after"),
        pytest.param("observation", "2026-11-27T04:59:00Z", False, id="obs-utc-still-26th-in-ny"),
        pytest.param("observation", "2026-11-27T05:00:00Z", True, id="obs-utc-27th-in-ny"),
    ],
)
def test_sync_counts_future_dated_screens(kind: str, authored: str, future: bool) -> None:
    # R4_DATETIME; the example plan's billing.timezone is America/New_York (EST, UTC-5).
    from bhi_fhir.practice_plan import load_practice_plan
    from bhi_fhir.sync import DEFAULT_AGENT, PatientContext, plan_patient
    from bhi_fhir.sync.runner import default_plan_path, load_protocol_files
    from tests.instruments.screen_records import phq9_response, synthea_screen

    record = {"resourceType": "Patient", "id": "p1"}
    context = (
        PatientContext("Patient/p1", record, [phq9_response("p1", authored)])
        if kind == "response"
        else PatientContext("Patient/p1", record, [], synthea_screen("p1", authored))
    )
    result = plan_patient(context, protocol=load_protocol_files(),
                          practice_plan=load_practice_plan(default_plan_path()), today=TODAY,
                          recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
    assert result.future_dated == (1 if future else 0)


def test_sync_report_says_future_dated_without_phi() -> None:
    from bhi_fhir.sync.report import RunReport

    report = RunReport(run_id="r1", server="http://fhir", dry_run=False, since=None)
    assert report.to_dict()["futureDatedScreens"] == 0
    assert "future-dated" not in report.to_text()
    report.future_dated = 2
    assert report.to_dict()["futureDatedScreens"] == 2
    assert "future-dated: 2 screens after today" in report.to_text()
