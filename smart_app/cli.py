"""``bhi-fhir serve``: run the SMART app (``--demo``: over the bundled synthetic clinic)."""

from __future__ import annotations

import typer

from bhi_fhir.cli import app


@app.command()
def serve(
    demo: bool = typer.Option(False, "--demo", help="Serve the synthetic clinic; no EHR."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
) -> None:
    """Serve the SMART-on-FHIR app (EHR launch at /launch, demo at /demo)."""
    import uvicorn

    from smart_app.config import Settings
    from smart_app.main import create_app

    overrides: dict[str, object] = {}
    if demo:
        overrides = {"demo": True, "base_url": f"http://{host}:{port}", "cookie_secure": False}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    if demo:
        typer.echo(f"DEMO: open http://{host}:{port}/demo (synthetic clinic, no EHR)")
    # No access log: request lines carry the OAuth code and state (/callback) and patient ids.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)
