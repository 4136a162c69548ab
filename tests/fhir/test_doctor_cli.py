"""``bhi-fhir doctor`` against a mocked server: output, exit codes, unreachable server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from typer.testing import CliRunner

from bhi_fhir.cli import _register, app
from bhi_fhir.fhir import errors
from tests.fhir.capability import capability_statement
from tests.fhir.conftest import BASE

_register()


def doctor_args(*args: str) -> list[str]:
    """Typer collapses a one-command app; name the command only when it is a group."""
    single = (
        len(app.registered_commands) == 1
        and not app.registered_groups
        and app.registered_callback is None
    )
    return list(args) if single else ["doctor", *args]


PLAN_TYPES = ("Practitioner", "PractitionerRole", "Organization")


def echo_ids(request: httpx.Request) -> httpx.Response:
    """A server that has every resource searched by ``_id``."""
    kind = request.url.path.rsplit("/", 1)[-1]
    ids = request.url.params["_id"].split(",")
    entries = [{"resource": {"resourceType": kind, "id": i}} for i in ids]
    return httpx.Response(
        200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries}
    )


def count_bundle(total: int) -> httpx.Response:
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset", "total": total})


@pytest.fixture
def server(sleeps: list[float]) -> Iterator[respx.MockRouter]:
    """No SMART, the example plan's references all present, a few screens."""
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        router.get("/.well-known/smart-configuration").mock(return_value=httpx.Response(404))
        for kind in PLAN_TYPES:
            router.get(f"/{kind}").mock(side_effect=echo_ids)
        router.get("/QuestionnaireResponse").mock(return_value=count_bundle(12))
        router.get("/Observation").mock(return_value=count_bundle(3))
        yield router


def test_doctor_is_registered() -> None:
    assert any(c.name == "doctor" for c in app.registered_commands)


def test_json_report_for_a_capable_server(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["can_run"] is True
    assert report["transaction"] is True
    assert report["software"] == "HAPI FHIR Server 8.8.0"


def test_table_report(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    result = CliRunner().invoke(app, doctor_args("--server", BASE))
    assert result.exit_code == 0
    assert "search QuestionnaireResponse" in result.stdout
    assert "ready" in result.stdout


def test_unsupported_server_exits_non_zero(server: respx.MockRouter) -> None:
    cap = capability_statement(types=("Patient",), system=())
    server.get("/metadata").mock(return_value=httpx.Response(200, json=cap))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == errors.EXIT_CONFIG
    assert json.loads(result.stdout)["can_run"] is False


def test_unreachable_server_is_one_clear_line(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(side_effect=httpx.ConnectError("Connection refused"))
    result = CliRunner().invoke(app, ["-q", *doctor_args("--server", BASE)])
    assert result.exit_code == errors.EXIT_UNAVAILABLE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot check {BASE}:")
    assert "fhir.test" in lines[0]
    assert "Traceback" not in result.output


def test_not_fhir_is_a_protocol_error(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, text="<html>login</html>"))
    result = CliRunner().invoke(app, doctor_args("--server", BASE))
    assert result.exit_code == errors.EXIT_PROTOCOL
    assert "not JSON" in result.stderr


ERROR_LINE = (
    "error: cannot check http://127.0.0.1:9/fhir: GET /fhir/metadata: "
    "no response from http://127.0.0.1:9 (ConnectError)"
)


@pytest.mark.parametrize(
    ("options", "retry_lines"),
    [([], 2), (["-q"], 0)],
    ids=["retries-reach-the-operator", "quiet-leaves-the-error-only"],
)
def test_unreachable_server_in_a_real_process(options: list[str], retry_lines: int) -> None:
    """Outside pytest's log capture the retry warnings reach stderr (type and status only, no
    path: paths carry ids), then the one error line; ``-q`` leaves the error line alone.

    Port 9 (discard) on loopback refuses connections; the doctor retries twice, then exits.
    """
    command = [sys.executable, "-c", "from bhi_fhir.cli import main; main()", *options]
    command += doctor_args("--server", "http://127.0.0.1:9/fhir", "--timeout", "2")
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == errors.EXIT_UNAVAILABLE
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == ERROR_LINE
    assert len(lines) == retry_lines + 1
    for line in lines[:-1]:  # not a terminal: JSON lines (--log-format auto)
        entry = json.loads(line)
        assert (entry["level"], entry["logger"]) == ("warning", "bhi_fhir.fhir.client")
        assert entry["message"].startswith("fhir GET metadata → TransportError; retry")


def test_server_text_is_shown_verbatim_not_as_markup_or_emoji() -> None:
    from rich.console import Console

    from bhi_fhir.fhir.doctor import _render_table
    from bhi_fhir.fhir.profile import ServerProfile

    profile = ServerProfile(base_url=BASE, fhir_version="4.0.1", software="[b]Evil[/b] :100:")
    console = Console(record=True, width=300)
    _render_table(profile, console)
    assert "[b]Evil[/b] :100:" in console.export_text()


# --- the data the workflow depends on -----------------------------------------------------------


def test_screening_total_codes_are_the_registrys() -> None:
    """LOINC totals: PHQ-9 44261-6, PHQ-2 55758-7, PHQ-A 89204-2, GAD-7 70274-6, AUDIT-C
    75626-2, EPDS 99046-5 (US Core and PACIO examples, Synthea 3.3 output)."""
    from bhi_fhir.fhir.doctor_data import SCREENING_TOTAL_CODES

    assert set(SCREENING_TOTAL_CODES) == {
        "44261-6",
        "55758-7",
        "89204-2",
        "70274-6",
        "75626-2",
        "99046-5",
    }


def test_plan_references_one_search_per_type_and_screening_counts(
    server: respx.MockRouter,
) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["plan"]["missing"] == []
    assert report["plan"]["references"] == 10  # the example plan's distinct references
    searches = [c.request.url for c in server.calls if c.request.url.path.endswith(PLAN_TYPES)]
    assert sorted(u.path.rsplit("/", 1)[-1] for u in searches) == sorted(PLAN_TYPES)
    assert all(u.params["_elements"] == "id" for u in searches)
    assert report["screening"]["questionnaire_responses"] == 12
    assert report["screening"]["observations"]["44261-6"] == 3
    counts = [c.request.url for c in server.calls if c.request.url.path.endswith("/Observation")]
    assert len(counts) == 6
    assert {u.params["category"] for u in counts} == {"survey"}
    assert {u.params["_summary"] for u in counts} == {"count"}
    assert "http://loinc.org|99046-5" in {u.params["code"] for u in counts}
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["practice plan references"]["status"] == "ok"
    assert checks["screening data"]["status"] == "ok"
    # HAPI-like: no SMART, so no backend services — still ready for unauthenticated use.
    assert checks["SMART backend services"]["status"] == "skip"
    assert "not available" in checks["SMART backend services"]["detail"]


def test_missing_plan_references_are_not_ready(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))

    def without_lifeline(request: httpx.Request) -> httpx.Response:
        ids = [i for i in request.url.params["_id"].split(",") if i != "988-lifeline"]
        entries = [{"resource": {"resourceType": "Organization", "id": i}} for i in ids]
        return httpx.Response(200, json={"resourceType": "Bundle", "entry": entries})

    server.get("/Organization").mock(side_effect=without_lifeline)
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == errors.EXIT_CONFIG
    report = json.loads(result.stdout)
    assert report["can_run"] is False
    assert report["plan"]["missing"] == [
        {
            "reference": "Organization/988-lifeline",
            "plan": ["crisis.directory.988.performer"],
        }
    ]
    assert "Organization/988-lifeline" in report["summary"]


def test_a_type_the_server_cannot_search_is_not_ready(
    server: respx.MockRouter, tmp_path: Path
) -> None:
    from bhi_fhir.sync.runner import default_plan_path

    plan = (
        default_plan_path()
        .read_text()
        .replace('performer = "Organization/riverside-csu"', 'performer = "HealthcareService/csu"')
    )
    assert "HealthcareService/csu" in plan
    (tmp_path / "plan.toml").write_text(plan)
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    server.get("/HealthcareService").mock(return_value=httpx.Response(404))
    args = ("--server", BASE, "--format", "json", "--plan", str(tmp_path / "plan.toml"))
    result = CliRunner().invoke(app, doctor_args(*args))
    assert result.exit_code == errors.EXIT_CONFIG
    report = json.loads(result.stdout)
    assert list(report["plan"]["unverified"]) == ["HealthcareService"]
    assert report["plan"]["missing"] == []  # the other types were all found


def test_a_plan_that_cannot_be_used_is_one_line(server: respx.MockRouter, tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text('practice = "x"\n')
    result = CliRunner().invoke(
        app, doctor_args("--server", BASE, "--plan", str(tmp_path / "plan.toml"))
    )
    assert result.exit_code == errors.EXIT_CONFIG
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_no_screening_data_yet_is_a_warning_not_a_failure(server: respx.MockRouter) -> None:
    server.get("/metadata").mock(return_value=httpx.Response(200, json=capability_statement()))
    server.get("/QuestionnaireResponse").mock(return_value=count_bundle(0))
    server.get("/Observation").mock(return_value=count_bundle(0))
    result = CliRunner().invoke(app, doctor_args("--server", BASE, "--format", "json"))
    assert result.exit_code == 0, result.output
    check = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "screening data")
    assert check["status"] == "warn"
    assert check["detail"].startswith("none yet")


def test_doctor_authenticates_with_backend_services_asking_read_scopes_only(
    server: respx.MockRouter, tmp_path: Path
) -> None:
    from urllib.parse import parse_qs

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    token_url = "http://auth.test/token"
    server.get("/.well-known/smart-configuration").mock(
        return_value=httpx.Response(
            200,
            json={
                "token_endpoint": token_url,
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            },
        )
    )
    token = server.post(token_url).mock(
        return_value=httpx.Response(200, json={"access_token": "tok", "expires_in": 300})
    )
    metadata = server.get("/metadata").mock(
        return_value=httpx.Response(200, json=capability_statement())
    )
    args = ("--server", BASE, "--format", "json", "--client-id", "bhi-doctor")
    result = CliRunner().invoke(app, doctor_args(*args, "--private-key", str(tmp_path / "key.pem")))
    assert result.exit_code == 0, result.output
    assert parse_qs(token.calls.last.request.content.decode())["scope"] == ["system/*.rs"]
    assert metadata.calls.last.request.headers["Authorization"] == "Bearer tok"
    check = next(
        c for c in json.loads(result.stdout)["checks"] if c["name"] == "SMART backend services"
    )
    assert check["status"] == "ok"


def test_bearer_token_and_client_id_together_is_a_usage_error(server: respx.MockRouter) -> None:
    result = CliRunner().invoke(
        app, doctor_args("--server", BASE, "--bearer-token", "t", "--client-id", "c")
    )
    assert result.exit_code == 2
    assert "not both" in result.output


@pytest.mark.parametrize(
    ("wait", "refusals", "exit_code"),
    [(0, 3, errors.EXIT_UNAVAILABLE), (60, 3, 0), (60, 6, 0), (6, 6, errors.EXIT_UNAVAILABLE)],
    ids=["no-wait-fails-at-once", "wait-outlasts-one-round", "wait-outlasts-two-rounds",
         "wait-too-short"],
)
def test_wait_for_a_server_still_starting(
    server: respx.MockRouter, monkeypatch: pytest.MonkeyPatch, wait: float, refusals: int,
    exit_code: int,
) -> None:
    """--wait keeps trying a server that refuses connections (one still starting, as HAPI in
    docker compose); each round is the client's own three tries, WAIT_STEP apart."""
    from bhi_fhir.fhir import doctor

    clock = [0.0]
    monkeypatch.setattr(doctor.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(doctor.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    answers = [httpx.ConnectError("Connection refused")] * refusals
    answers.append(httpx.Response(200, json=capability_statement()))
    server.get("/metadata").mock(side_effect=answers)
    result = CliRunner().invoke(app, ["-q", *doctor_args("--server", BASE, "--wait", str(wait))])
    assert result.exit_code == exit_code, result.output
