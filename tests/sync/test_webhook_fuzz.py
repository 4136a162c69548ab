"""Fuzz tier for the notification endpoint ``/fhir-notify`` (Hypothesis + FastAPI TestClient).

Properties, over JSON-ish and hostile bodies, content types, secrets and extra headers:
never a 5xx; a wrong or missing secret is 401 and nothing is queued; a body that is not a
QuestionnaireResponse with a Patient subject is 400 with an OperationOutcome and nothing is
queued; a well-formed notification is 200 with exactly its patient queued (an empty POST: one
incremental run). Bounded (max_examples, no deadline) to run in seconds; BHI_FUZZ_EXAMPLES=1000
for a longer search.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bhi_fhir.sync import webhook
from bhi_fhir.sync.queue import QueueStatus
from bhi_fhir.sync.subscription import SECRET_HEADER

FUZZ = settings(max_examples=int(os.environ.get("BHI_FUZZ_EXAMPLES", "40")), deadline=None,
                database=None, suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
SECRET = "s3cret"
SERVER = "http://fhir.test/fhir"

_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
            | st.text(max_size=12))  # fmt: skip
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip
_REFERENCES = st.sampled_from(
    ["Patient/p1", "http://fhir.test/fhir/Patient/p2", "Patient/p3/_history/2", "Group/g1",
     "Patient/", "#contained", "urn:uuid:1", "Patient?identifier=x", ""]
) | st.text(max_size=20)  # fmt: skip
# Shaped like a notified QuestionnaireResponse, each field sometimes wrong.
_NOTIFIED = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["QuestionnaireResponse", "Patient", "", None, 7])},
    optional={
        "id": st.sampled_from(["q1", "q2", ""]) | _JSON,
        "subject": st.fixed_dictionaries({"reference": _REFERENCES}) | _JSON,
        "item": _JSON,
    },
)  # fmt: skip
_BODIES = st.one_of(
    _NOTIFIED.map(lambda r: json.dumps(r).encode()),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
    _NOTIFIED.map(lambda r: json.dumps(r).encode()[: len(json.dumps(r)) // 2]),  # cut short
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),  # nested deep
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b""),
    st.just(b" \n"),
    st.just(b'{"resourceType":"QuestionnaireResponse","subject":{"reference":"Patient/p1"}}\xff'),
)
_ROUTES = st.sampled_from([
    ("POST", "/fhir-notify"), ("POST", "/fhir-notify/"),
    ("PUT", "/fhir-notify/QuestionnaireResponse/q1"),
    ("POST", "/fhir-notify/QuestionnaireResponse/q1"),
    ("PUT", "/fhir-notify/Patient/p1"),
])  # fmt: skip
_CONTENT_TYPES = st.sampled_from(
    [None, "application/fhir+json", "application/json", "text/plain", "multipart/form-data",
     "application/fhir+json; charset=latin-1", "application/x-www-form-urlencoded"]
)  # fmt: skip
_SECRETS = st.sampled_from([SECRET, None, "", "wrong", SECRET + " ", SECRET.upper()])
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
_EXTRA_HEADERS = st.dictionaries(
    _HEADER_TEXT.filter(lambda k: k and ":" not in k).map(lambda k: f"x-{k}"), _HEADER_TEXT,
    max_size=3,
)  # fmt: skip


class _Recorder:
    """Stands in for the app's SyncQueue: records what would be queued."""

    def __init__(self) -> None:
        self.submitted: list[str | None] = []

    def submit(self, patient: str | None) -> None:
        self.submitted.append(patient)

    def status(self) -> QueueStatus:
        return QueueStatus.empty(4, 10_000)


@pytest.fixture
def app_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, _Recorder]]:
    recorder = _Recorder()
    monkeypatch.setattr(webhook, "_queue", lambda request, settings: recorder)
    app = FastAPI()
    app.include_router(webhook.router, prefix="/fhir-notify")
    settings_ = webhook.NotifySettings(server=SERVER, secret=SECRET)
    app.dependency_overrides[webhook.get_notify_settings] = lambda: settings_
    # a 500 is answered, not raised into the test: it is what this test rules out
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, recorder


def _not_a_response(body: bytes) -> bool:
    """The body is not even a JSON object with resourceType QuestionnaireResponse."""
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):
        return True
    return not isinstance(data, dict) or data.get("resourceType") != "QuestionnaireResponse"


def _is_outcome(response: Any) -> bool:
    if not response.headers.get("content-type", "").startswith("application/fhir+json"):
        return False
    body = response.json()
    return body.get("resourceType") == "OperationOutcome" and bool(body.get("issue"))


def test_the_endpoint_never_fails_and_queues_only_what_it_can_read(
    app_client: tuple[TestClient, _Recorder],
) -> None:
    client, recorder = app_client

    @FUZZ
    @given(route=_ROUTES, body=_BODIES, content_type=_CONTENT_TYPES, secret=_SECRETS,
           extra=_EXTRA_HEADERS)  # fmt: skip
    def check(
        route: tuple[str, str], body: bytes, content_type: str | None, secret: str | None,
        extra: dict[str, str],
    ) -> None:  # fmt: skip
        recorder.submitted.clear()
        headers = dict(extra)
        if content_type is not None:
            headers["content-type"] = content_type
        if secret is not None:
            headers[SECRET_HEADER] = secret
        method, path = route
        response = client.request(method, path, content=body, headers=headers)

        assert response.status_code < 500, (response.status_code, response.text)
        if response.status_code != 200:
            assert recorder.submitted == [], "nothing is queued for a refused notification"
            assert _is_outcome(response), response.text
        if path.startswith("/fhir-notify/Patient/"):
            assert response.status_code == 400  # only QuestionnaireResponse notifications
            return
        if secret != SECRET:
            assert response.status_code == 401
            return
        resource_id = path.rsplit("/", 1)[1] if "QuestionnaireResponse/" in path else None
        if not body.strip():
            # an empty POST is the incremental run; an empty PUT has no resource to read
            assert response.status_code == (400 if resource_id else 200)
            assert recorder.submitted == ([] if resource_id else [None])
            return
        if response.status_code == 200:
            assert len(recorder.submitted) == 1
            patient = recorder.submitted[0]
            assert patient is not None and patient.startswith("Patient/")
        else:
            assert response.status_code == 400
        if _not_a_response(body):
            assert response.status_code == 400  # never accepted, never queued

    check()


def test_a_well_formed_notification_queues_exactly_its_patient(
    app_client: tuple[TestClient, _Recorder],
) -> None:
    client, recorder = app_client

    @FUZZ
    @given(patient=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1,
                           max_size=20), qid=st.sampled_from(["q1", None]), absolute=st.booleans())
    def check(patient: str, qid: str | None, absolute: bool) -> None:  # fmt: skip
        recorder.submitted.clear()
        reference = f"{SERVER}/Patient/{patient}" if absolute else f"Patient/{patient}"
        resource: dict[str, Any] = {"resourceType": "QuestionnaireResponse",
                                    "subject": {"reference": reference}}  # fmt: skip
        if qid is not None:
            resource["id"] = qid
        response = client.put("/fhir-notify/QuestionnaireResponse/q1", json=resource,
                              headers={SECRET_HEADER: SECRET})  # fmt: skip
        assert response.status_code == 200, response.text
        assert recorder.submitted == [f"Patient/{patient}"]

    check()
