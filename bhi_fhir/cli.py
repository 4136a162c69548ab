"""The ``bhi-fhir`` command line: the root that wires the commands together.

Each command is a plain function next to the code it drives (``score`` in instruments, ``apply``
in workflow, ``sync`` and ``subscribe`` in sync, ``bill`` in billing, ``measure`` in measures,
``doctor`` and ``export`` in fhir, ``registry`` in registry); this module imports them and
registers them on :data:`app`.
No command module imports this one. ``serve`` is declared here and imports the SMART app
(``smart_app``) only when it runs, so the library never imports the app.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bhi_fhir import __version__, logs
from bhi_fhir.billing.cli import bill
from bhi_fhir.fhir.doctor import doctor
from bhi_fhir.fhir.export_cli import export_command
from bhi_fhir.instruments.cli import score_command
from bhi_fhir.logs import LogFormat
from bhi_fhir.measures.cli import measure_command
from bhi_fhir.metrics.cli import report_command
from bhi_fhir.registry.cli import registry_command
from bhi_fhir.settings import cli_settings
from bhi_fhir.sync.cli import subscribe, sync
from bhi_fhir.workflow.cli import apply_command

app = typer.Typer(
    name="bhi-fhir",
    help="Behavioral-health integration on FHIR: score screenings, run the BHI workflow, "
    "sync, bill.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"bhi-fhir {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True,
                          help="more log lines on stderr: -v the run's events, -vv each request")
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="log errors only (warnings are on by default)")
    ] = False,
    log_format: Annotated[
        LogFormat | None,
        typer.Option("--log-format", help="auto (Rich lines at a terminal, else JSON lines), "
                     "text, or json: one object per line [env: BHI_LOG_FORMAT; default: auto]"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True,
                           help="print the version and exit")
    ] = False,
) -> None:
    """Behavioral-health integration on FHIR: score screenings, run the BHI workflow, sync, bill."""
    fmt = log_format or cli_settings().log_format  # the option wins over BHI_LOG_FORMAT
    logs.configure(-1 if quiet else verbose, fmt)


def serve(
    demo: Annotated[bool, typer.Option("--demo", help="Serve the synthetic clinic; no EHR.")]
    = False,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the SMART-on-FHIR app (EHR launch at /launch, demo at /demo)."""
    from smart_app.cli import serve as run_app  # the app is imported only to serve it

    run_app(demo=demo, host=host, port=port)


for name, command in (
    ("score", score_command),
    ("apply", apply_command),
    ("sync", sync),
    ("subscribe", subscribe),
    ("bill", bill),
    ("measure", measure_command),
    ("doctor", doctor),
    ("export", export_command),
    ("registry", registry_command),
    ("report", report_command),
    ("serve", serve),
):
    app.command(name)(command)


def _register() -> None:
    """Nothing left to do: the commands are registered when this module is imported. Kept so
    callers written for the old self-registering commands still work."""


def main() -> None:
    app()
