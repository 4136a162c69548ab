"""The practice plan's AUDIT-C cut points (screening.auditc_positive_male/female) reach the
scorer: ``score_response``, ``bhi-fhir score --plan``, scored screening Observations and the
brief-intervention rule all decide on one threshold. Both sides of each sex's cut point.

Sources: AUDIT-C positive at >= 4 for men and >= 3 for women (US Core
Questionnaire-AUDIT-C); the women's (lower) cut point when sex is not known (auditc.py, the
brief-intervention rule's ``iif(%facts.sex = 'male', …male, …female)``). A practice may move
them (practice-plan.toml ``[screening]``, a practice choice): the 5 / 4 rows below stand for
such a plan.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.exit_codes import EXIT_CONFIG
from bhi_fhir.instruments import score_response
from bhi_fhir.instruments.observation_scores import scores_from_observations
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import PracticePlan, parse_practice_plan
from tests.instruments.build import audit, response

US_CORE = "US Core Questionnaire-AUDIT-C"
PLAN = "practice choice: plan sets male 5 / female 4"


def plan(male: int | None = None, female: int | None = None) -> PracticePlan:
    data: dict[str, Any] = tomllib.loads((examples_dir() / "practice-plan.toml").read_text())
    if male is not None:
        data["screening"]["auditc_positive_male"] = male
    if female is not None:
        data["screening"]["auditc_positive_female"] = female
    return parse_practice_plan(data)


def points(total: int) -> tuple[int, int, int]:
    """AUDIT-C answers summing to ``total`` with Q2 > 0 (not a Q1-only screen)."""
    q1 = min(4, total - 1)
    q2 = min(4, total - q1)
    return q1, q2, total - q1 - q2


# (male cut, female cut, sex, total, positive)
ROWS = [
    pytest.param(None, None, "male", 3, False, id=f"default-male-3-below {US_CORE}"),
    pytest.param(None, None, "male", 4, True, id=f"default-male-4-at {US_CORE}"),
    pytest.param(None, None, "female", 2, False, id=f"default-female-2-below {US_CORE}"),
    pytest.param(None, None, "female", 3, True, id=f"default-female-3-at {US_CORE}"),
    pytest.param(None, None, None, 2, False, id=f"default-unknown-2-below {US_CORE}"),
    pytest.param(None, None, None, 3, True, id=f"default-unknown-3-women's {US_CORE}"),
    pytest.param(5, 4, "male", 4, False, id=f"plan-male-4-below {PLAN}"),
    pytest.param(5, 4, "male", 5, True, id=f"plan-male-5-at {PLAN}"),
    pytest.param(5, 4, "female", 3, False, id=f"plan-female-3-below {PLAN}"),
    pytest.param(5, 4, "female", 4, True, id=f"plan-female-4-at {PLAN}"),
    pytest.param(5, 4, None, 3, False, id=f"plan-unknown-3-below {PLAN}"),
    pytest.param(5, 4, None, 4, True, id=f"plan-unknown-4-women's {PLAN}"),
]


@pytest.mark.parametrize(("male", "female", "sex", "total", "positive"), ROWS)
def test_score_response_takes_the_plan(
    male: int | None, female: int | None, sex: str | None, total: int, positive: bool
) -> None:
    cuts = plan(male, female).screening.cut_points
    score = score_response(response(audit(*points(total))), patient_sex=sex, cut_points=cuts)
    assert (score.instrument, score.total, score.positive) == ("auditc", total, positive)


@pytest.mark.parametrize(("male", "female", "sex", "total", "positive"), ROWS)
def test_lone_total_observation_takes_the_plan(
    male: int | None, female: int | None, sex: str | None, total: int, positive: bool
) -> None:
    # A Synthea-style lone AUDIT-C total (Synthea 3.3): 75626-2, valueQuantity {score}.
    total_obs = {
        "resourceType": "Observation", "id": "t", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "75626-2"}]},
        "subject": {"reference": "Patient/p-1"}, "effectiveDateTime": "2026-11-02",
        "valueQuantity": {"value": total, "unit": "{score}"},
    }
    cuts = plan(male, female).screening.cut_points
    [score] = scores_from_observations([total_obs], patient_sex=sex, cut_points=cuts)
    assert (score.instrument, score.total, score.positive) == ("auditc", total, positive)


@pytest.mark.parametrize(("male", "female", "sex", "total", "positive"), ROWS)
def test_score_cli_plan_option(
    tmp_path: Path, male: int | None, female: int | None, sex: str | None, total: int,
    positive: bool,
) -> None:
    entries: list[dict[str, Any]] = [{"resource": response(audit(*points(total)))}]
    if sex is not None:
        entries.append({"resource": {"resourceType": "Patient", "id": "p-1", "gender": sex}})
    (tmp_path / "in.json").write_text(json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": entries}))
    screening = plan(male, female).screening
    (tmp_path / "plan.toml").write_text(
        (examples_dir() / "practice-plan.toml").read_text()
        .replace("auditc_positive_male = 4",
                 f"auditc_positive_male = {screening.auditc_positive_male}")
        .replace("auditc_positive_female = 3",
                 f"auditc_positive_female = {screening.auditc_positive_female}"))
    _register()
    result = CliRunner().invoke(app, ["score", str(tmp_path / "in.json"), "--plan",
                                      str(tmp_path / "plan.toml"), "--format", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["instrument"], row["total"], row["positive"]) == ("auditc", total, positive)


def test_score_cli_bad_plan_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text("[screening]\nauditc_positive_male = 0\n")
    (tmp_path / "in.json").write_text(json.dumps(response(audit(1, 1, 1))))
    _register()
    result = CliRunner().invoke(app, ["score", str(tmp_path / "in.json"), "--plan",
                                      str(tmp_path / "plan.toml")])
    assert result.exit_code == EXIT_CONFIG
