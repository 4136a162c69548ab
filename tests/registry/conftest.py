"""The store's backends (SQLite always, PostgreSQL under the ``postgres`` marker), as in
tests/sync."""

from tests.sync.conftest import pg_server, pytest_collection_modifyitems, store_url

__all__ = ["pg_server", "pytest_collection_modifyitems", "store_url"]
