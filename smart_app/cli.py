"""``bhi-fhir serve``: run the SMART app (``--demo``: over the bundled synthetic clinic)."""

from __future__ import annotations

import os
from typing import Any

import typer

from bhi_fhir.cli import app

# The app's own loggers (the launch, the views, the notification receiver and its queue) go to
# uvicorn's default handler (stderr). They log events, counts and statuses, never ids or tokens;
# httpx/httpcore stay at WARNING (main.quiet_http_logs): their URLs carry ids and OAuth codes.
APP_LOGGERS = ("smart_app", "bhi_fhir")


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the app's loggers added at INFO."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "formatters": {
            **LOGGING_CONFIG["formatters"],
            "app": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            **LOGGING_CONFIG["handlers"],
            "app": {
                "formatter": "app",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            **{
                name: {"handlers": ["app"], "level": "INFO", "propagate": False}
                for name in APP_LOGGERS
            },
        },
    }
    return config


@app.command()
def serve(
    demo: bool = typer.Option(False, "--demo", help="Serve the synthetic clinic; no EHR."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Serve the SMART-on-FHIR app (EHR launch at /launch, demo at /demo)."""
    import uvicorn

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
            raise typer.Exit(2)
        overrides = {"demo": True, "base_url": f"http://{host}:{port}", "cookie_secure": False}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if demo:
        typer.echo(f"DEMO: open http://{host}:{port}/demo (synthetic clinic, no EHR)")
    # No access log: request lines carry the OAuth code and state (/callback) and patient ids.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        log_config=log_config(),
    )
