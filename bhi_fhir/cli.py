"""The ``bhi-fhir`` command line.

Commands live next to the code they drive; this module only wires them together.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bhi_fhir import __version__, logs
from bhi_fhir.logs import LogFormat

app = typer.Typer(
    name="bhi-fhir",
    help="Behavioral-health integration on FHIR: score screenings, run the BHI workflow, "
    "sync, bill.",
    no_args_is_help=True,
    add_completion=False,
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
        LogFormat, typer.Option("--log-format", envvar="BHI_LOG_FORMAT",
                                help="text, or json: one object per line")
    ] = LogFormat.text,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True,
                           help="print the version and exit")
    ] = False,
) -> None:
    """Behavioral-health integration on FHIR: score screenings, run the BHI workflow, sync, bill."""
    logs.configure(-1 if quiet else verbose, log_format)


def _register() -> None:
    # Each command module registers itself on `app`; keep imports here so `--help` stays cheap.
    from bhi_fhir.billing import cli as _bill_cli  # noqa: F401
    from bhi_fhir.fhir import doctor as _doctor_cli  # noqa: F401
    from bhi_fhir.instruments import cli as _score_cli  # noqa: F401
    from bhi_fhir.measures import cli as _measure_cli  # noqa: F401
    from bhi_fhir.sync import cli as _sync_cli  # noqa: F401
    from bhi_fhir.workflow import cli as _apply_cli  # noqa: F401
    from smart_app import cli as _serve_cli  # noqa: F401


def main() -> None:
    _register()
    app()
