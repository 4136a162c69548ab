"""The notification receiver under test: its router alone, with the sync it queues recorded."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bhi_fhir.sync import webhook


def record_runs(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """Replace the queued sync with a recorder: the patients it was asked to run, in order."""
    seen: list[str | None] = []

    async def fake_run(settings: webhook.NotifySettings, patient: str | None) -> None:
        seen.append(patient)

    monkeypatch.setattr(webhook, "_run", fake_run)
    return seen


def notify_client(
    settings: webhook.NotifySettings, *, raise_server_exceptions: bool = True
) -> TestClient:
    """A client of ``/fhir-notify`` configured by ``settings``."""
    app = FastAPI()
    app.include_router(webhook.router, prefix="/fhir-notify")
    app.dependency_overrides[webhook.get_notify_settings] = lambda: settings
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)
