"""The command-line root imports the commands (never the reverse) and reaches the SMART app
only when ``serve`` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bhi_fhir.cli import app

COMMANDS = {"score", "apply", "sync", "subscribe", "bill", "measure", "doctor", "export",
            "registry", "serve"}


def test_every_command_is_registered_once() -> None:
    names = [command.name for command in app.registered_commands]
    assert len(names) == len(set(names))
    assert set(names) >= COMMANDS


def test_the_library_and_the_cli_do_not_import_the_app() -> None:
    code = (
        "import sys, bhi_fhir, bhi_fhir.cli, bhi_fhir.sync.webhook; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'smart_app'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"


def test_shell_completion_is_offered_for_the_installed_command() -> None:
    """``bhi-fhir --show-completion bash`` prints a script that completes through the CLI."""
    script = Path(sys.executable).parent / "bhi-fhir"
    done = subprocess.run([str(script), "--show-completion", "bash"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "_BHI_FHIR_COMPLETE=complete_bash" in done.stdout
    assert "complete -o default -F _bhi_fhir_completion bhi-fhir" in done.stdout
