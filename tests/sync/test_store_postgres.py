"""The operational store on a real PostgreSQL ("PostgreSQL by URL"): what SQLite cannot show.

The shared contract (test_store.py) and the concurrency tests (test_store_concurrency.py) run
on PostgreSQL too, as their ``[postgresql]`` cases. Here: ``$BHI_STATE_URL`` naming a
PostgreSQL database, the schema ``Store.open`` creates in an empty one, and a whole sync run
keeping its state there. The server is a throwaway cluster (tests/pg_server.py).
"""

from __future__ import annotations

from datetime import date

import httpx
import pytest
from sqlalchemy import inspect

from bhi_fhir.store import STATE_URL_ENV, AuditRow, Store
from bhi_fhir.sync import SyncConfig, run_sync
from tests.pg_server import PgServer
from tests.sync.test_runner import BASE, FakeServer

pytestmark = pytest.mark.postgres


def test_state_url_from_env_creates_the_schema_in_an_empty_database(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.create_database()
    monkeypatch.setenv(STATE_URL_ENV, url)
    store = Store.open()  # no URL: $BHI_STATE_URL
    try:
        assert store.engine.dialect.name == "postgresql"
        schema = inspect(store.engine)
        assert {"watermarks", "runs", "writes"} <= set(schema.get_table_names())
        assert {i["name"] for i in schema.get_indexes("writes")} >= {"ix_writes_identifier"}
        assert [fk["referred_table"] for fk in schema.get_foreign_keys("writes")] == ["runs"]
        started = {c["name"]: c["type"] for c in schema.get_columns("runs")}["started_at"]
        assert getattr(started, "timezone", False), "timestamps must keep their time zone"

        run_id = store.start_run(BASE)
        store.record_writes(run_id, BASE, [AuditRow("engage", "engage:x", "create", "created")])
        store.finish_run(run_id, status="ok", counts={"nested": {"a": 1}}, errors=[{"m": "é"}],
                         request_count=1, watermark=None)
        record = store.run(run_id)
        assert record is not None
        assert record.started_at.tzinfo is not None and record.finished_at is not None
        assert (record.counts, record.errors) == ({"nested": {"a": 1}}, [{"m": "é"}])
    finally:
        store.close()
    Store.open(url).close()  # opening again over the existing schema is fine


async def test_a_sync_run_keeps_its_state_in_postgres(pg_server: PgServer) -> None:
    url = pg_server.create_database()
    server = FakeServer(3)
    config = SyncConfig(server=BASE, today=date(2026, 11, 26), state_url=url,
                        transport=httpx.MockTransport(server))
    report = await run_sync(config)
    assert report.status == "ok", report.to_text()
    assert report.watermark is not None

    store = Store.open(url)
    try:
        assert store.watermark(BASE) == report.watermark
        record = store.run(report.run_id)
        assert record is not None
        assert (record.status, record.watermark, record.request_count) == (
            "ok", report.watermark, report.requests)
        writes = store.writes(report.run_id)
        assert writes and {w.server for w in writes} == {BASE}
        assert len(writes) == sum(report.written.values()) + sum(report.provenance.values())
    finally:
        store.close()
