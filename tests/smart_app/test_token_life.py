"""The access token's life (smart_app.tokens) and what the refusal pages show.

SMART App Launch 2.2 app-launch.md: ``expires_in`` is recommended and ``refresh_token``
optional; a refresh may rotate the refresh token. RFC 6749 §4.1.2.1 / §5.2: the authorization
server's ``error`` and ``error_description``.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from smart_app.ehr_errors import NOT_ACCEPTED
from smart_app.sessions import TokenSet
from smart_app.tokens import REFRESH_AHEAD, refresh_due
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import age_token, authorize, ehr_launch, start_launch


@pytest.fixture(autouse=True)
def _app_logs_reach_caplog(monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve``'s logging setup (run by other tests) stops the app's loggers propagating."""
    for name in [*logging.root.manager.loggerDict, "smart_app", "bhi_fhir"]:
        if name.split(".")[0] in ("smart_app", "bhi_fhir"):
            logger = logging.getLogger(name)
            monkeypatch.setattr(logger, "propagate", True)
            monkeypatch.setattr(logger, "disabled", False)
            monkeypatch.setattr(logger, "level", logging.NOTSET)


def _token(lifetime: float | None, left: float, refresh: bool = True) -> TokenSet:
    return TokenSet(
        access_token="a",
        token_type="Bearer",
        scope="",
        expires_at=1000.0 + left,
        refresh_token="r" if refresh else None,
        lifetime=lifetime,
    )


@pytest.mark.parametrize(
    ("lifetime", "left", "refresh", "due"),
    [
        pytest.param(3600, 3600 * REFRESH_AHEAD + 1, True, False, id="1h-token-just-outside"),
        pytest.param(3600, 3600 * REFRESH_AHEAD - 1, True, True, id="1h-token-just-inside"),
        pytest.param(40, 40 * REFRESH_AHEAD + 1, True, False, id="40s-token-fresh-page"),
        pytest.param(40, 40 * REFRESH_AHEAD - 1, True, True, id="40s-token-last-quarter"),
        pytest.param(40, 1, False, False, id="no-refresh-token-never-refreshes"),
        pytest.param(None, 61, True, False, id="legacy-session-outside-60s"),
        pytest.param(None, 59, True, True, id="legacy-session-inside-60s"),
    ],
)
def test_refresh_ahead_by_a_share_of_the_lifetime(
    lifetime: float | None, left: float, refresh: bool, due: bool
) -> None:
    assert refresh_due(_token(lifetime, left, refresh), now=1000.0) is due


def test_a_short_token_serves_pages_without_refreshing(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.expires_in = 40  # below the old fixed 60 s margin
    ehr_launch(app_client, ehr)
    for _ in range(3):
        assert app_client.get("/patient/p1").status_code == 200
    assert [c["form"]["grant_type"] for c in ehr.token_requests] == ["authorization_code"]


def test_a_short_token_without_refresh_ends_the_session_only_when_it_expires(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr.expires_in, ehr.issue_refresh_tokens = 40, False
    ehr_launch(app_client, ehr)
    assert app_client.get("/patient/p1").status_code == 200  # not "Session expired"
    age_token(app_client, remaining=0)
    ended = app_client.get("/patient/p1")
    assert ended.status_code == 401 and "Your session has ended" in ended.text
    assert f'href="/launch?iss={ehr.fhir_base.replace(":", "%3A").replace("/", "%2F")}"' in (
        ended.text
    )
    assert app_client.get("/patient/p1").status_code == 401  # the session is gone
    assert [c["form"]["grant_type"] for c in ehr.token_requests] == ["authorization_code"]


def test_a_401_refreshes_once_and_retries(
    app_client: TestClient, ehr: AuthServerState, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ehr_launch(app_client, ehr)
    ehr.access_tokens.clear()  # the EHR revoked the token before its expiry
    page = app_client.get("/patient/p1")
    assert page.status_code == 200 and "Ada Example" in page.text
    assert [c["form"]["grant_type"] for c in ehr.token_requests] == [
        "authorization_code",
        "refresh_token",
    ]
    assert "answered 401" in caplog.text and "refreshed (after a 401)" in caplog.text


@pytest.mark.parametrize(
    "refresh_tokens",
    [pytest.param(True, id="refresh-refused"), pytest.param(False, id="no-refresh-token")],
)
def test_a_401_that_a_refresh_cannot_cure_ends_the_session(
    app_client: TestClient, ehr: AuthServerState, refresh_tokens: bool
) -> None:
    ehr.issue_refresh_tokens = refresh_tokens
    ehr_launch(app_client, ehr)
    ehr.access_tokens.clear()
    ehr.refresh_tokens.clear()
    page = app_client.get("/patient/p1")
    assert page.status_code == 401 and "Your session has ended" in page.text
    assert 'id="relaunch"' in page.text and ehr.base not in page.text.split('id="relaunch"')[0]


def test_a_refresh_ahead_that_fails_keeps_the_valid_token(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    age_token(app_client, remaining=600)  # due (a 1 h token's last quarter), still valid
    ehr.refresh_tokens.clear()
    assert app_client.get("/patient/p1").status_code == 200


def _pending_state(app_client: TestClient, ehr: AuthServerState) -> str:
    first = start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    return parse_qs(urlsplit(first.headers["location"]).query)["state"][0]


def test_callback_error_and_description_are_shown_escaped(
    app_client: TestClient, ehr: AuthServerState, caplog: pytest.LogCaptureFixture
) -> None:
    state = _pending_state(app_client, ehr)
    page = app_client.get(
        "/callback",
        params={
            "state": state,
            "error": "invalid_scope",
            "error_description": "patient/Task.cruds was refused <script>x()</script>",
        },
    )
    assert page.status_code == 400
    assert "<code>invalid_scope</code>" in page.text
    assert "patient/Task.cruds was refused &lt;script&gt;x()&lt;/script&gt;" in page.text
    assert "<script>x()" not in page.text
    assert "refused (invalid_scope)" in caplog.text and "x()" not in caplog.text


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        pytest.param(
            (400, '{"error": "invalid_grant", "error_description": "code expired"}'),
            "token request refused by the authorization server: invalid_grant",
            id="oauth-error",
        ),
        pytest.param(
            (401, '{"error": "invalid_client"}'),
            "token request refused by the authorization server: invalid_client",
            id="client-refused",
        ),
        pytest.param((503, "busy"), "the token endpoint answered HTTP 503", id="server-error"),
        pytest.param((200, "<html>login</html>"), "the token response is not JSON", id="not-json"),
        pytest.param(
            (200, '{"access_token": "x", "token_type": "mac"}'),
            "the token response has no bearer access token",
            id="no-bearer",
        ),
    ],
)
def test_token_endpoint_failures_are_told_apart(
    app_client: TestClient,
    ehr: AuthServerState,
    caplog: pytest.LogCaptureFixture,
    answer: tuple[int, str],
    logged: str,
) -> None:
    callback = authorize(
        start_launch(app_client, iss=ehr.fhir_base, launch=ehr.new_launch(patient="p1"))
    )
    ehr.token_answer = answer
    page = app_client.get(callback, follow_redirects=False)
    assert page.status_code == 502 and "Sign-in failed" in page.text
    assert logged in caplog.text
    if "error_description" in answer[1]:
        assert "code expired" in page.text


def test_a_refused_write_is_a_clinician_message_without_server_urls(
    app_client: TestClient, ehr: AuthServerState
) -> None:
    ehr_launch(app_client, ehr)
    page = app_client.get("/patient/p1")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    entry = page.text.split('name="entry_id" value="')[1].split('"')[0]
    ehr.transaction_answer = (
        422,
        {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "processing",
                    "diagnostics": "HAPI-0001: http://hapi.internal:8080/fhir/Encounter invalid",
                }
            ],
        },
    )
    refused = app_client.post(
        "/patient/p1/time",
        data={"csrf_token": csrf, "entry_id": entry, "minutes": "20", "mode": "phone"},
    )
    assert refused.status_code == 502
    assert NOT_ACCEPTED.split(":")[0] in refused.text
    assert "hapi.internal" not in refused.text and "HAPI-0001" not in refused.text
    assert ehr.base not in refused.text and "/fhir" not in refused.text


# Status meanings: FHIR R4 RESTful API (hl7.org/fhir/R4/http.html: 412 for a stale If-Match,
# 422 for a business rule, 410 for a deleted resource) and RFC 9110 §15 for the rest.
@pytest.mark.parametrize(
    ("status", "shown", "page_status"),
    [
        pytest.param(400, "did not accept this", 502, id="400-bad-request"),
        pytest.param(403, "did not allow this", 403, id="403-scope"),
        pytest.param(404, "no longer has this record", 404, id="404"),
        pytest.param(409, "changed this record", 409, id="409-version-clash"),
        pytest.param(410, "no longer has this record", 404, id="410-deleted"),
        pytest.param(412, "changed this record", 409, id="412-stale-if-match"),
        pytest.param(422, "did not accept this", 502, id="422-business-rule"),
        pytest.param(501, "cannot read", 502, id="501-not-implemented"),
        pytest.param(503, "did not answer in time", 503, id="503-retryable"),
    ],
)
def test_ehr_refusals_read_in_clinician_terms(status: int, shown: str, page_status: int) -> None:
    import httpx

    from bhi_fhir.fhir.errors import error_from_response
    from smart_app.deps import Refusal
    from smart_app.ehr_errors import ehr_refusal

    request = httpx.Request("POST", "http://hapi.internal:8080/fhir/Encounter/e1")
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "processing",
         "diagnostics": "http://hapi.internal:8080/fhir/Patient/p1 is not allowed here"}]}
    exc = error_from_response(httpx.Response(status, json=outcome, request=request))
    refusal = ehr_refusal("Time not logged", exc)
    assert isinstance(refusal, Refusal) and refusal.status == page_status
    assert shown in str(refusal)
    assert "hapi.internal" not in str(refusal) and "Patient/p1" not in str(refusal)


def test_a_401_past_the_renewal_ends_the_session() -> None:
    import httpx

    from bhi_fhir.fhir.errors import error_from_response
    from smart_app.ehr_errors import ehr_refusal
    from smart_app.tokens import SessionEnded

    request = httpx.Request("GET", "http://ehr.example/fhir/Patient/p1")
    exc = error_from_response(httpx.Response(401, request=request))
    assert isinstance(ehr_refusal("Could not load the patient", exc), SessionEnded)
