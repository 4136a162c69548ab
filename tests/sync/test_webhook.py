"""The rest-hook receiver and the Subscription registration, without a server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from bhi_fhir.sync import webhook
from bhi_fhir.sync.subscription import SECRET_HEADER, ensure_subscription, subscription_resource
from tests.sync.notify import notify_client, record_runs

SECRET = "s3cret"
QR = {"resourceType": "QuestionnaireResponse", "id": "q1", "subject": {"reference": "Patient/p1"}}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    return record_runs(monkeypatch)


def _settle(client: TestClient) -> None:
    """Until the queued runs are done (they run after the 200, in the app's loop)."""
    queue = getattr(client.app.state, "fhir_notify_queue", None)  # type: ignore[attr-defined]
    if queue is not None:
        client.portal.call(queue.join)  # type: ignore[union-attr]


@pytest.fixture
def client() -> Iterator[TestClient]:
    # as a context manager: one event loop for all requests, and the lifespan (shutdown) runs
    with notify_client(webhook.NotifySettings(server="http://fhir.test/fhir", secret=SECRET)) as c:
        yield c


def test_put_with_the_resource_runs_the_sync_for_its_patient(
    client: TestClient, runs: list[str | None]
) -> None:
    response = client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR,
                          headers={SECRET_HEADER: SECRET})
    assert response.status_code == 200
    _settle(client)
    assert runs == ["Patient/p1"]


def test_empty_post_runs_the_incremental_sync(
    client: TestClient, runs: list[str | None]
) -> None:
    response = client.post("/fhir-notify", headers={SECRET_HEADER: SECRET,
                           "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200
    _settle(client)
    assert runs == [None]


def test_status_shows_counts_without_authentication(
    client: TestClient, runs: list[str | None]
) -> None:
    before = client.get("/fhir-notify/status").json()
    assert before["configured"] is True and before["inFlight"] == before["completed"] == 0
    client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR, headers={SECRET_HEADER: SECRET})
    _settle(client)
    status = client.get("/fhir-notify/status")
    assert status.status_code == 200
    body = status.json()
    assert body["completed"] == 1 and body["failed"] == 0 and body["queued"] == 0
    assert body["limit"] == 4 and body["maxQueued"] == 10_000
    assert "p1" not in status.text  # counts only: no ids


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"{not json", "not JSON"),
        (json.dumps({"resourceType": "Patient", "id": "q1"}).encode(), "not a Questionnaire"),
        (json.dumps({**QR, "id": "other"}).encode(), "does not match"),
        (json.dumps({**QR, "subject": {"reference": "Group/g"}}).encode(), "no Patient"),
    ],
)
def test_a_bad_notification_is_a_400_operation_outcome(
    client: TestClient, runs: list[str | None], body: bytes, why: str
) -> None:
    response = client.put("/fhir-notify/QuestionnaireResponse/q1", content=body,
                          headers={SECRET_HEADER: SECRET, "Content-Type": "application/fhir+json"})
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert why in outcome["issue"][0]["diagnostics"]
    assert runs == []


def test_a_wrong_or_missing_secret_is_refused(client: TestClient, runs: list[str | None]) -> None:
    assert client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR).status_code == 401
    wrong = client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR,
                       headers={SECRET_HEADER: "nope"})
    assert wrong.status_code == 401 and runs == []


def test_unconfigured_receiver_answers_503(runs: list[str | None]) -> None:
    response = notify_client(webhook.NotifySettings()).post("/fhir-notify")
    assert response.status_code == 503 and runs == []


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BHI_NOTIFY_SERVER", "http://fhir.test/fhir")
    monkeypatch.setenv("BHI_NOTIFY_TAGS", "urn:a|x, urn:b|y")
    settings = webhook.NotifySettings.from_env()
    assert settings.tags == (("urn:a", "x"), ("urn:b", "y"))
    config = settings.config("Patient/p1")
    assert config.patient == "Patient/p1" and config.server == "http://fhir.test/fhir"
    assert (settings.concurrency, settings.queue_max, settings.shutdown_grace) == (4, 10_000, 10)


def test_queue_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BHI_NOTIFY_CONCURRENCY", "2")
    monkeypatch.setenv("BHI_NOTIFY_QUEUE_MAX", "50")
    monkeypatch.setenv("BHI_NOTIFY_SHUTDOWN_GRACE", "1.5")
    settings = webhook.NotifySettings.from_env()
    assert (settings.concurrency, settings.queue_max, settings.shutdown_grace) == (2, 50, 1.5)
    monkeypatch.setenv("BHI_NOTIFY_CONCURRENCY", "0")
    monkeypatch.setenv("BHI_NOTIFY_QUEUE_MAX", "lots")
    settings = webhook.NotifySettings.from_env()
    assert (settings.concurrency, settings.queue_max) == (4, 10_000)  # defaults, and said so
    assert "BHI_NOTIFY_CONCURRENCY" in caplog.text and "BHI_NOTIFY_QUEUE_MAX" in caplog.text


def _subscription_server(existing: list[dict[str, Any]], created: list[dict[str, Any]]) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.url.params["url"] == "https://app.test/fhir-notify"
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                             "entry": [{"resource": r} for r in existing]})
        body = json.loads(request.content)
        created.append(body)
        return httpx.Response(201, json={**body, "id": "new"})

    return httpx.MockTransport(handler)


async def test_subscribe_creates_once_then_finds_its_own() -> None:
    wanted = subscription_resource("https://app.test/fhir-notify", "QuestionnaireResponse?",
                                   SECRET)
    assert wanted["channel"]["payload"] == "application/fhir+json"
    assert wanted["channel"]["header"] == [f"{SECRET_HEADER}: {SECRET}"]
    created: list[dict[str, Any]] = []
    first = await ensure_subscription(
        "http://fhir.test/fhir", "https://app.test/fhir-notify",
        criteria="QuestionnaireResponse?", secret=SECRET,
        transport=_subscription_server([], created),
    )
    assert first == ("new", True) and len(created) == 1
    existing = [{**wanted, "id": "s1", "status": "active"}]
    again = await ensure_subscription(
        "http://fhir.test/fhir", "https://app.test/fhir-notify",
        criteria="QuestionnaireResponse?", secret=SECRET,
        transport=_subscription_server(existing, created),
    )
    assert again == ("s1", False) and len(created) == 1
    # an errored one (or other criteria) is not ours any more: a new one is created
    errored = [{**wanted, "id": "s1", "status": "error"}]
    third = await ensure_subscription(
        "http://fhir.test/fhir", "https://app.test/fhir-notify",
        criteria="QuestionnaireResponse?", secret=SECRET,
        transport=_subscription_server(errored, created),
    )
    assert third == ("new", True) and len(created) == 2


@pytest.mark.parametrize("stored", [True, False], ids=["stored-then-found", "not-stored-fails"])
async def test_a_create_that_timed_out_is_looked_for_not_repeated(stored: bool) -> None:
    """A POST whose answer never came may have been stored: subscribe searches once more (and
    never sends the POST again, which could make a second Subscription)."""
    from bhi_fhir.fhir.errors import RequestTimeout

    wanted = subscription_resource("https://app.test/fhir-notify", "QuestionnaireResponse?",
                                   SECRET)
    on_server: list[dict[str, Any]] = []
    posts: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset",
                                             "entry": [{"resource": r} for r in on_server]})
        posts.append(request.content)
        if stored:
            on_server.append({**wanted, "id": "s9", "status": "requested"})
        raise httpx.ReadTimeout("no answer", request=request)

    call = ensure_subscription("http://fhir.test/fhir", "https://app.test/fhir-notify",
                               criteria="QuestionnaireResponse?", secret=SECRET,
                               transport=httpx.MockTransport(handler))
    if stored:
        assert await call == ("s9", True)
    else:
        with pytest.raises(RequestTimeout):
            await call
    assert len(posts) == 1


@pytest.mark.parametrize(
    ("where", "criteria"),
    [([], "QuestionnaireResponse?"),
     ([("_tag", "https://bhi-fhir.dev/test-case|c1")],
      "QuestionnaireResponse?_tag=https://bhi-fhir.dev/test-case|c1"),
     ([("questionnaire", "http://example.org/Questionnaire/phq-9"), ("status", "completed")],
      "QuestionnaireResponse?questionnaire=http://example.org/Questionnaire/phq-9"
      "&status=completed")],
    ids=["every-response", "one-tag", "two-parameters"],
)
def test_subscribe_where_narrows_the_criteria(
    where: list[tuple[str, str]], criteria: str
) -> None:
    from bhi_fhir.sync.cli import subscription_criteria

    assert subscription_criteria(where) == criteria


def test_subscribe_where_without_a_value_is_a_usage_error() -> None:
    from typer.testing import CliRunner

    from bhi_fhir.cli import app

    result = CliRunner().invoke(app, ["subscribe", "--server", "https://ehr.example/fhir",
                                      "--endpoint", "https://app.example/fhir-notify",
                                      "--where", "_tag"])
    assert result.exit_code == 2 and "NAME=VALUE" in result.output
