"""``bhi-fhir serve``: run the SMART app (``--demo``: over the bundled synthetic clinic).

The command line (bhi_fhir.cli) imports this module only when ``serve`` runs: the library
never imports the app."""

from __future__ import annotations

import os
from typing import Any

import typer

from bhi_fhir import logs
from bhi_fhir.exit_codes import EXIT_CONFIG, exit_code_of

# The app's own loggers (the launch, the views, the notification receiver and its queue) go to
# stderr beside uvicorn's lines, at INFO (-v DEBUG, -q WARNING), as text or JSON lines
# (--log-format). They log events, counts and statuses, never ids or tokens; httpx/httpcore
# stay at WARNING (bhi_fhir.logs.quiet_url_loggers): their URLs carry ids and OAuth codes.
APP_LOGGERS = logs.PACKAGE_LOGGERS


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the app's loggers added, one level above the
    command line's verbosity (a service's events are its log)."""
    from uvicorn.config import LOGGING_CONFIG

    verbosity, fmt = logs.chosen()
    return logs.uvicorn_config(LOGGING_CONFIG, logs.level_for(verbosity + 1), fmt)


def serve(demo: bool = False, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the SMART-on-FHIR app; the command's options are bhi_fhir.cli's ``serve``."""
    import uvicorn

    from bhi_fhir.practice_plan import PracticePlanError
    from smart_app.config import Settings, demo_conflicts
    from smart_app.main import create_app

    overrides: dict[str, object] = {}
    if demo:
        conflicts = demo_conflicts(os.environ)
        if conflicts:
            # Refused rather than ignored: these name a real EHR or server, and the demo's
            # banner promises that nothing is written to a real record.
            typer.echo(
                "serve --demo refused: the environment sets "
                f"{', '.join(conflicts)}. The demo reaches no EHR, database or notification "
                "server; unset them (or run `bhi-fhir serve` without --demo).",
                err=True,
            )
            raise typer.Exit(EXIT_CONFIG)
        overrides = {"demo": True, "base_url": f"http://{host}:{port}", "cookie_secure": False}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if demo:
        typer.echo(f"DEMO: open http://{host}:{port}/demo (synthetic clinic, no EHR)")
    try:
        app = create_app(settings)
    except PracticePlanError as exc:  # the plan is read once, at start-up
        typer.echo(f"serve refused: {exc}", err=True)
        raise typer.Exit(exit_code_of(exc)) from None
    # No access log: request lines carry the OAuth code and state (/callback) and patient ids.
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        log_config=log_config(),
    )
