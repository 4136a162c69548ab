"""The deployable package: docker-compose.yml valid against the Compose Specification, a HAPI
service needing no shell, the commands it runs parse, the variables it sets are read by the
app, and a Dockerfile that hadolint passes. Images cannot be pulled on these machines, so the
files are checked rather than run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from ruamel.yaml import YAML

from bhi_fhir.cli import app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """A linter from the test extra; missing is a failure, never a skip."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def compose() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    return data


def test_compose_file_is_valid_compose_spec() -> None:
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_healthcheck_needs_a_shell() -> None:
    """The official HAPI image has no shell, wget or curl: a CMD-SHELL healthcheck never passes
    and a service waiting for service_healthy never starts."""
    services = compose()["services"]
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test") or []
        words = [test] if isinstance(test, str) else test
        assert not any(w in ("CMD-SHELL", "wget", "curl", "sh") for w in words), name
        for needed, condition in (service.get("depends_on") or {}).items():
            if not services[needed].get("healthcheck"):
                assert condition["condition"] != "service_healthy", (name, needed)


def test_serve_is_a_service() -> None:
    serve = compose()["services"]["serve"]
    assert serve["command"][0] == "serve"
    assert any(port.endswith(":8000") for port in serve["ports"])


@pytest.mark.parametrize("name", ["bhi-fhir", "serve", "sync"])
def test_the_commands_parse(name: str) -> None:
    """Each service's command is a command with options the command line accepts."""
    command = compose()["services"][name]["command"]
    root: Any = typer.main.get_command(app)
    sub = root.get_command(root.make_context("bhi-fhir", [command[0]]), command[0])
    assert sub is not None, command[0]
    sub.make_context(command[0], list(command[1:]))  # raises on an unknown option or value


def test_compose_variables_are_read_by_the_package() -> None:
    """Every BHI_* variable the compose file sets is one the package reads (not a test's)."""
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for package in ("bhi_fhir", "smart_app")
        for path in (ROOT / package).rglob("*.py")
    )
    names = {
        variable
        for service in compose()["services"].values()
        for variable in (service.get("environment") or {})
        if variable.startswith("BHI_")
    }
    assert names
    for variable in names:
        assert re.search(rf"\b{variable}\b", source), variable


def test_dockerfile_copies_what_exists() -> None:
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
