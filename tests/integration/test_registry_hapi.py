"""The registry read model on the real HAPI: after ``sync`` the stored rows are the live
registry's, and an app write brings the patient's row up to date at once.

The clinic is seeded per case (ids prefixed, run and case tags). Rows are compared for the
case's patients only (the server may hold other data); a stored row less its freshness keys
must equal the row the live page computes from the server at that moment.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bhi_fhir.fhir import FhirClient
from bhi_fhir.paths import examples_dir
from bhi_fhir.practice_plan import load_practice_plan
from bhi_fhir.registry import build_registry, compute_rows, load_registry
from bhi_fhir.registry.model import enrollment_rule_of
from bhi_fhir.registry.reader import enrolled_ids, read_records
from bhi_fhir.store import Store
from bhi_fhir.sync import run_sync
from smart_app.config import EhrRegistration, Settings
from smart_app.main import create_app
from smart_app.sessions import TokenSet, new_session
from tests.integration.conftest import CASE_SYSTEM, RunTag
from tests.integration.test_sync import SEEDED_TYPES, WRITTEN_TYPES, config, seed_clinic
from tests.sync.clinic import delete_tagged

TODAY = date(2026, 11, 26)
PLAN = load_practice_plan(examples_dir() / "practice-plan.toml")
FRESHNESS = ("read_at", "day", "refreshed_by")
APP_URL = "http://testserver"


@pytest.fixture(autouse=True)
def _delete_case(fhir_base_url: str, case_id: str) -> Iterator[None]:
    yield
    delete_tagged(fhir_base_url, f"{CASE_SYSTEM}|{case_id}",
                  ("Provenance", *WRITTEN_TYPES[:-1], *reversed(SEEDED_TYPES)))


def _ours(rows: dict[str, dict[str, Any]], case_id: str) -> dict[str, dict[str, Any]]:
    prefix = f"c{case_id[:8]}-"
    return {k: {f: v for f, v in r.items() if f not in FRESHNESS}
            for k, r in rows.items() if k.startswith(prefix)}


async def _live(base: str) -> dict[str, dict[str, Any]]:
    client = FhirClient(base, timeout=120)
    try:
        ids = await enrolled_ids(client, enrollment_rule_of(PLAN))
        return compute_rows(await read_records(client, ids), TODAY, PLAN)
    finally:
        await client.aclose()


def _stored(store: Store, base: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in load_registry(store, base, TODAY).rows}


def test_after_sync_the_stored_registry_is_the_live_registry(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, 30)
    state = tmp_path / "state.db"
    store = Store.open(f"sqlite:///{state}")
    try:

        async def build() -> None:
            client = FhirClient(fhir_base_url, timeout=120)
            try:
                await build_registry(store, fhir_base_url, client, today=TODAY, plan=PLAN)
            finally:
                await client.aclose()

        asyncio.run(build())  # the registry in use: from now on sync keeps it
        before = _ours(_stored(store, fhir_base_url), case_id)
        assert before == _ours(asyncio.run(_live(fhir_base_url)), case_id)
        report = asyncio.run(run_sync(config(fhir_base_url, run_tag, case_id, state),
                                      store=store))
        assert report.status == "ok", report.problems
        live = _ours(asyncio.run(_live(fhir_base_url)), case_id)
        after = _ours(_stored(store, fhir_base_url), case_id)
        assert after == live
        assert len(live) > len(before)  # the sync enrolled patients: their rows are stored
        refreshed = {r["id"] for r in load_registry(store, fhir_base_url, TODAY).rows
                     if r["refreshed_by"] == "sync"}
        assert set(live) - set(before) <= refreshed
    finally:
        store.close()


def _signed_in(client: TestClient, app: Any, base: str) -> str:
    """A session signed in to ``base`` (HAPI takes no token): its CSRF token."""
    session = new_session()
    session.iss = base
    session.token = TokenSet(access_token="unused-by-hapi", token_type="Bearer",
                             scope="openid fhirUser user/*.cruds")
    session.context.fhir_user = f"{base}/{PLAN.team.care_managers[0].reference}"
    app.state.store.save(session)
    client.cookies.set(app.state.settings.cookie_name, session.id)
    return session.csrf_token


def test_an_app_write_updates_the_patients_row(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, 20)
    settings = Settings(cookie_secure=False, base_url=APP_URL, today=TODAY.isoformat(),
                        registrations=[EhrRegistration(iss=fhir_base_url, client_id="bhi")])
    app = create_app(settings)
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    app.state.registry_store = store
    try:
        with TestClient(app, base_url=APP_URL) as client:
            csrf = _signed_in(client, app, fhir_base_url)
            first = client.get("/registry")
            assert first.status_code == 200, first.text
            assert "First use" in first.text  # built once from the EHR, then read from the store
            patient = next(iter(_ours(_stored(store, fhir_base_url), case_id)))
            minutes = _stored(store, fhir_base_url)[patient]["minutes"] or 0
            second = client.get("/registry")
            assert "First use" not in second.text and 'id="freshness"' in second.text

            logged = client.post(f"/patient/{patient}/time", follow_redirects=False, data={
                "csrf_token": csrf, "minutes": "25", "mode": "phone",
                "entry_id": uuid.uuid4().hex})
            assert logged.status_code == 303, logged.text
            row = _stored(store, fhir_base_url)[patient]
            assert row["minutes"] == minutes + 25 and row["refreshed_by"] == "app"
            live = _ours(asyncio.run(_live(fhir_base_url)), case_id)
            assert _ours(_stored(store, fhir_base_url), case_id) == live

            page = client.get("/registry").text
            assert re.search(rf'href="/patient/{patient}"', page)
            refused = client.post(f"/registry/refresh/{patient}", follow_redirects=False,
                                  data={"csrf_token": "wrong"})
            assert refused.status_code == 403
            refreshed = client.post(f"/registry/refresh/{patient}", follow_redirects=False,
                                    data={"csrf_token": csrf})
            assert refreshed.status_code == 303
            assert _stored(store, fhir_base_url)[patient]["refreshed_by"] == "refresh"
    finally:
        store.close()


def test_the_registry_command_builds_the_rows_the_live_page_computes(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    """``bhi-fhir registry`` (the nightly rebuild) stores every enrolled patient's row for the
    day asked, equal to the live computation; a second build replaces, never duplicates."""
    from typer.testing import CliRunner

    from bhi_fhir.cli import app

    seed_clinic(fhir_base_url, run_tag, case_id, 20)
    state = f"sqlite:///{tmp_path / 'state.db'}"
    args = ["registry", "--server", fhir_base_url, "--state-url", state,
            "--plan", str(examples_dir() / "practice-plan.toml"),
            "--today", TODAY.isoformat(), "--format", "json"]
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    store = Store.open(state)
    try:
        stored = _ours(_stored(store, fhir_base_url), case_id)
        assert stored and stored == _ours(asyncio.run(_live(fhir_base_url)), case_id)
        assert {r["refreshed_by"] for r in load_registry(store, fhir_base_url, TODAY).rows} \
            == {"build"}
        assert len(load_registry(store, fhir_base_url, TODAY).rows) \
            == json.loads(result.stdout)["rows"]
    finally:
        store.close()
