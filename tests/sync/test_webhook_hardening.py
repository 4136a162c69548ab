"""The receiver refuses what it cannot trust or read: no secret configured, bodies too large,
any malformed body (400 with an OperationOutcome, never a 500)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.sync import webhook
from bhi_fhir.sync.subscription import SECRET_HEADER
from tests.sync.notify import notify_client, record_runs

SECRET = "s3cret"
SERVER = "http://fhir.test/fhir"
QR = {"resourceType": "QuestionnaireResponse", "id": "q1", "subject": {"reference": "Patient/p1"}}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    return record_runs(monkeypatch)


def _client(settings: webhook.NotifySettings) -> TestClient:
    # a 500 is answered, not raised into the test: it is what these tests rule out
    return notify_client(settings, raise_server_exceptions=False)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with _client(webhook.NotifySettings(server=SERVER, secret=SECRET)) as c:
        yield c


def test_without_a_secret_notifications_are_refused(runs: list[str | None]) -> None:
    with _client(webhook.NotifySettings(server=SERVER)) as client:
        put = client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR)
        post = client.post("/fhir-notify")
    assert put.status_code == post.status_code == 503
    assert "BHI_NOTIFY_SECRET" in put.json()["issue"][0]["diagnostics"]
    assert runs == []


def test_insecure_mode_accepts_without_a_secret_and_says_so_at_start_up(
    runs: list[str | None], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bhi_fhir.sync.webhook")
    with _client(webhook.NotifySettings(server=SERVER, insecure=True)) as client:
        assert any("WITHOUT a shared secret" in r.getMessage() for r in caplog.records)
        response = client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR)
        assert response.status_code == 200
        client.portal.call(client.app.state.fhir_notify_queue.join)  # type: ignore[attr-defined]
    assert runs == ["Patient/p1"]


def test_a_missing_secret_is_warned_about_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bhi_fhir.sync.webhook")
    with _client(webhook.NotifySettings(server=SERVER)):
        pass
    assert any("refuses every notification" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("value", "insecure"),
    [("1", True), ("true", True), ("", False), ("0", False), ("no", False)],
    ids=["one", "true", "empty", "zero", "no"],
)
def test_insecure_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, insecure: bool
) -> None:
    monkeypatch.setenv("BHI_NOTIFY_INSECURE", value)
    assert webhook.NotifySettings.from_env().insecure is insecure


def test_a_secret_wins_over_insecure(runs: list[str | None]) -> None:
    with _client(webhook.NotifySettings(server=SERVER, secret=SECRET, insecure=True)) as client:
        assert client.put("/fhir-notify/QuestionnaireResponse/q1", json=QR).status_code == 401


@pytest.mark.parametrize(
    ("size", "status"),
    [(webhook.MAX_NOTIFICATION_BYTES, 400), (webhook.MAX_NOTIFICATION_BYTES + 1, 413)],
    ids=["at-the-limit", "one-byte-over"],
)
def test_a_body_over_the_limit_is_413(
    client: TestClient, runs: list[str | None], size: int, status: int
) -> None:
    body = b" " * (size - 2) + b"[]"  # JSON, but not a QuestionnaireResponse
    response = client.put("/fhir-notify/QuestionnaireResponse/q1", content=body,
                          headers={SECRET_HEADER: SECRET, "Content-Type": "application/fhir+json"})
    assert response.status_code == status  # 413: Starlette's body limit answers, unread
    assert runs == []


def test_a_chunked_body_over_the_limit_is_413(client: TestClient, runs: list[str | None]) -> None:
    """No Content-Length: the limit counts what arrives."""
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        for _ in range(webhook.MAX_NOTIFICATION_BYTES // len(chunk) + 1):
            yield chunk

    response = client.post("/fhir-notify", content=chunks(), headers={SECRET_HEADER: SECRET})
    assert response.status_code == 413 and runs == []


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'"QuestionnaireResponse"',
        b"null",
        b"42",
        b"\xff\xfe",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        json.dumps({**QR, "subject": "Patient/p1"}).encode(),
        json.dumps({**QR, "subject": {"reference": ["Patient/p1"]}}).encode(),
        json.dumps({**QR, "subject": {"reference": {"nested": "Patient/p1"}}}).encode(),
        json.dumps({**QR, "id": {"nested": "q1"}}).encode(),
        json.dumps({**QR, "resourceType": ["QuestionnaireResponse"]}).encode(),
        json.dumps({**QR, "subject": None}).encode(),
        b'{"resourceType": "QuestionnaireResponse", "subject": {"reference": NaN}}',
    ],
    ids=["array", "string", "null", "number", "not-utf8", "deep-array", "deep-object",
         "subject-string", "reference-list", "reference-object", "id-object",
         "resource-type-list", "subject-null", "nan"],
)
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_every_malformed_body_is_a_400_operation_outcome(
    client: TestClient, runs: list[str | None], body: bytes, method: str
) -> None:
    path = "/fhir-notify/QuestionnaireResponse/q1" if method == "PUT" else "/fhir-notify"
    response = client.request(method, path, content=body,
                               headers={SECRET_HEADER: SECRET,
                                        "Content-Type": "application/fhir+json"})
    assert response.status_code == 400, response.text[:200]
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "invalid"
    assert runs == []
