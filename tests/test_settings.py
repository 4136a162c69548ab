"""One settings model per process (bhi_fhir.settings, smart_app.config, the receiver's
NotifySettings): every variable starts with BHI_, an empty one counts as unset, and a command's
option wins over its variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bhi_fhir import logs
from bhi_fhir.cli import app
from bhi_fhir.fhir.auth_factory import AuthSettings
from bhi_fhir.settings import CREDENTIALS, CliSettings
from bhi_fhir.sync.webhook import NotifySettings
from smart_app.config import Settings as AppSettings


@pytest.mark.parametrize(
    ("env", "field", "value"),
    [({"BHI_FHIR_TOKEN": "t1"}, "bearer_token", "t1"),
     ({"BHI_FHIR_BEARER_TOKEN": "t2"}, "bearer_token", "t2"),
     ({"BHI_FHIR_CLIENT_ID": "bhi"}, "client_id", "bhi"),
     ({"BHI_FHIR_PRIVATE_KEY": "/k.pem"}, "private_key", Path("/k.pem")),
     ({"BHI_FHIR_SCOPE": "system/*.rs"}, "scope", "system/*.rs"),
     ({"BHI_FHIR_KID": "k1"}, "kid", "k1"),
     ({"BHI_FHIR_TOKEN": ""}, "bearer_token", None),
     ({"BHI_LOG_FORMAT": "json"}, "log_format", logs.LogFormat.json),
     ({}, "log_format", logs.LogFormat.auto),
     ({"BHI_NOTIFY_SECRET": "s"}, "notify_secret", "s")],
    ids=["token", "bearer-token-name", "client-id", "private-key", "scope", "kid",
         "empty-is-unset", "log-format", "log-format-default", "notify-secret"],
)
def test_command_settings_from_the_environment(
    env: dict[str, str], field: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, given in env.items():
        monkeypatch.setenv(name, given)
    assert getattr(CliSettings(), field) == value


def test_the_receivers_credentials_are_the_commands_fields() -> None:
    """BHI_NOTIFY_CLIENT_ID and BHI_FHIR_CLIENT_ID fill the same AuthSettings field."""
    assert set(CREDENTIALS) == set(AuthSettings.__dataclass_fields__)
    assert set(NotifySettings().credentials()) == set(CliSettings().credentials())


def test_each_process_has_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BHI_NOTIFY_SERVER", "https://ehr.example/fhir")
    monkeypatch.setenv("BHI_APP_BASE_URL", "https://bhi.example")
    monkeypatch.setenv("BHI_FHIR_CLIENT_ID", "cli-client")
    assert NotifySettings().server == "https://ehr.example/fhir"
    assert NotifySettings().client_id is None  # BHI_FHIR_* is the commands'
    assert AppSettings().base_url == "https://bhi.example"
    assert CliSettings().client_id == "cli-client"


def _seen_auth(monkeypatch: pytest.MonkeyPatch) -> list[AuthSettings]:
    """``subscribe`` stopped at its first request, keeping the credentials it was given."""
    import bhi_fhir.sync.subscription as subscription

    seen: list[AuthSettings] = []

    async def ensure(*args: Any, auth: Any = None, **kwargs: Any) -> tuple[str, bool]:
        return "sub-1", True

    monkeypatch.setattr(subscription, "ensure_subscription", ensure)
    original = AuthSettings.for_command

    def recording(self: AuthSettings, server: str, *, write: bool = True) -> Any:
        seen.append(self)
        return original(self, server, write=write)

    monkeypatch.setattr(AuthSettings, "for_command", recording)
    return seen


@pytest.mark.parametrize(
    ("env", "options", "token"),
    [({"BHI_FHIR_TOKEN": "from-env"}, [], "from-env"),
     ({"BHI_FHIR_TOKEN": "from-env"}, ["--bearer-token", "from-option"], "from-option"),
     ({}, ["--bearer-token", "from-option"], "from-option"),
     ({}, [], None)],
    ids=["env", "option-wins", "option", "neither"],
)
def test_an_option_wins_over_its_variable(
    env: dict[str, str], options: list[str], token: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _seen_auth(monkeypatch)
    result = CliRunner().invoke(app, ["subscribe", "--server", "https://ehr.example/fhir",
                                      "--endpoint", "https://app.example/fhir-notify",
                                      *options], env=env)
    assert result.exit_code == 0, result.output
    assert seen[0].bearer_token == token


@pytest.mark.parametrize(
    ("env", "options", "json_lines"),
    [({"BHI_LOG_FORMAT": "json"}, [], True),
     ({"BHI_LOG_FORMAT": "json"}, ["--log-format", "text"], False),
     ({}, ["--log-format", "json"], True)],
    ids=["env", "option-wins", "option"],
)
def test_log_format_option_wins_over_its_variable(
    env: dict[str, str], options: list[str], json_lines: bool, tmp_path: Path
) -> None:
    CliRunner().invoke(app, [*options, "score", str(tmp_path)], env=env)
    assert (logs.chosen()[1] is logs.LogFormat.json) is json_lines


def test_only_prefixed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable without the BHI_ prefix (another program's PLAN_PATH, SERVER, CLIENT_ID) is
    never taken for a setting."""
    for name in ("PLAN_PATH", "SERVER", "CLIENT_ID", "LOG_FORMAT", "BEARER_TOKEN"):
        monkeypatch.setenv(name, "json" if name == "LOG_FORMAT" else "/elsewhere")
    notify, cli = NotifySettings(), CliSettings()
    assert notify.plan_path != Path("/elsewhere")
    assert (notify.server, notify.client_id, notify.bearer_token) == (None, None, None)
    assert (cli.client_id, cli.bearer_token, cli.log_format) == (None, None, logs.LogFormat.auto)
    monkeypatch.setenv("BHI_NOTIFY_PLAN", "/plan.toml")
    assert NotifySettings().plan_path == Path("/plan.toml")
