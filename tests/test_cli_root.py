"""The command-line root imports the commands (never the reverse) and reaches the SMART app
only when ``serve`` runs."""

from __future__ import annotations

import subprocess
import sys

from bhi_fhir.cli import app

COMMANDS = {"score", "apply", "sync", "subscribe", "bill", "measure", "doctor", "serve"}


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
