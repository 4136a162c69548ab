"""Backends of the operational store: SQLite (always) and a real PostgreSQL (``postgres``).

``store_url`` runs a test once per backend — ``[sqlite]`` on a fresh file, ``[postgresql]`` on
a fresh database of the session's throwaway server (tests/pg_server.py). Every PostgreSQL
test carries the ``postgres`` marker, so ``pytest -m postgres`` runs that tier alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_server import PgServer, running_pg_server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with running_pg_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty operational store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sub' / 'state.db'}"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_database()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Named in the JUnit XML (<property name="tier" value="postgres"/>): .ci/run checks that
    # every one of them ran, none skipped.
    for item in items:
        if item.get_closest_marker("postgres") is not None:
            item.user_properties.append(("tier", "postgres"))
