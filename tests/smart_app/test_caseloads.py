"""The app's plan preview/apply assigns a new enrollment by caseload, like
``bhi-fhir apply``: active BHI CarePlans counted per care manager (``count_caseloads``, one
search), the lowest caseload relative to the practice plan's capacity wins
(Garcia capacity 60, Okafor 45 in examples/practice-plan.toml)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.workflow import count_caseloads
from smart_app.config import Settings
from smart_app.main import create_app
from tests.smart_app.conftest import APP_URL, write_clinic

GARCIA, OKAFOR = "Practitioner/bhcm-garcia", "Practitioner/bhcm-okafor"
NEW = "p00005"  # scenario phq9-15-consent: positive screen, consent on file → enroll
ENROLLED = "p00016"  # already enrolled with Garcia: the caseloads do not matter


def _careplan(ident: str, manager: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "id": ident,
        "status": status,
        "intent": "plan",
        # bhi-fhir's own enrollment: its identifier system
        "identifier": [{"system": BHI_IDENTIFIER, "value": f"enroll.careplan:{ident}"}],
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "718347000"}]}],
        "subject": {"reference": f"Patient/{ident}"},
        "period": {"start": "2026-08-01"},
        "contributor": [{"reference": manager}],
    }


def _demo(tmp_path: Path, extra: list[dict[str, Any]]) -> TestClient:
    resources = []
    for path in sorted((examples_dir() / "clinic").glob("*.ndjson")):
        resources += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    settings = Settings(
        demo=True, demo_clinic=write_clinic(tmp_path, [*resources, *extra]),
        cookie_secure=False, base_url=APP_URL, today="2026-11-26",
    )  # fmt: skip
    return TestClient(create_app(settings), base_url=APP_URL)


# The clinic's own caseloads: Garcia 6/60, Okafor 7/45 → Garcia. Ten more active plans for
# Garcia (16/60 = 0.27 > 7/45 = 0.16) → Okafor; finished plans and other categories don't count.
LOADED = [
    *(_careplan(f"load-{n}", GARCIA) for n in range(10)),
    _careplan("done-1", OKAFOR, status="completed"),
    {**_careplan("other-1", OKAFOR), "category": [{"text": "diabetes"}], "identifier": []},
    # another service's mental-health care plan: context, not a BHI enrollment (decision 10)
    {**_careplan("elsewhere-1", OKAFOR), "identifier": []},
]


@pytest.fixture(params=[([], "Ana Garcia", GARCIA), (LOADED, "Chinedu Okafor", OKAFOR)],
                ids=["clinic", "garcia-loaded"])  # fmt: skip
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    extra, display, reference = request.param
    with _demo(tmp_path, extra) as client:
        client.get("/demo", follow_redirects=False)
        yield client, display, reference


def _source(client: TestClient) -> Any:
    return client.app.state.demo_source  # type: ignore[attr-defined]


def test_demo_source_counts_active_bhi_careplans_by_contributor(tmp_path: Path) -> None:
    plan = load_practice_plan(examples_dir() / "practice-plan.toml")
    with _demo(tmp_path, LOADED) as client:
        source = _source(client)
        before = source.request_count
        plans = asyncio.run(source.active_bhi_careplans())
        assert source.request_count == before + 1  # one search
        assert count_caseloads(plans, plan) == {GARCIA: 16, OKAFOR: 7}


def test_new_enrollment_goes_to_the_lowest_caseload(case: tuple[TestClient, str, str]) -> None:
    client, display, reference = case
    preview = client.get(f"/patient/{NEW}/plan")
    assert preview.status_code == 200
    assert f"consent on file: enroll with {display}" in preview.text
    digest = re.search(r'name="digest" value="([0-9a-f]+)"', preview.text)
    page = client.get(f"/patient/{NEW}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert digest and csrf
    applied = client.post(
        f"/patient/{NEW}/plan/apply",
        data={"csrf_token": csrf[1], "digest": digest[1]},
        follow_redirects=False,
    )
    # The apply recounts the same caseloads, so the preview's digest still matches.
    assert applied.status_code == 303 and "notice=plan-applied" in applied.headers["location"]
    created = [
        r
        for (kind, _), r in _source(client)._by_key.items()
        if kind == "CarePlan" and r["subject"]["reference"] == f"Patient/{NEW}"
    ]
    assert [c["contributor"][0]["reference"] for c in created] == [reference]


def test_caseloads_are_counted_only_when_they_can_matter(tmp_path: Path) -> None:
    """One extra request for a patient without a care manager; none for an enrolled one."""
    with _demo(tmp_path, LOADED) as client:
        client.get("/demo", follow_redirects=False)
        source = _source(client)

        def cost(patient: str) -> int:
            before = source.request_count
            assert client.get(f"/patient/{patient}/plan").status_code == 200
            return int(source.request_count - before)

        assert cost(NEW) == cost(ENROLLED) + 1
