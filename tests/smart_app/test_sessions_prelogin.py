"""Sessions not signed in to an EHR (every cookie-less /launch or /demo makes one) are bounded
in number and, for a launch on its way, short-lived; signed-in sessions are untouched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from smart_app import sessions
from smart_app.main import create_app
from smart_app.sessions import (
    MemorySessionStore,
    Session,
    SessionStore,
    SqlSessionStore,
    TokenSet,
    new_session,
)
from tests.smart_app.auth_server import AuthServerState
from tests.smart_app.conftest import APP_URL, make_settings, start_launch

HOURS_8 = 8 * 3600


def _store(kind: str, tmp_path: Path, max_prelogin: int = 1000) -> SessionStore:
    if kind == "memory":
        return MemorySessionStore(HOURS_8, 600, max_prelogin)
    return SqlSessionStore(f"sqlite:///{tmp_path / 's.db'}", HOURS_8, 600, max_prelogin)


def _signed_in() -> Session:
    session = new_session()
    session.iss = "http://ehr/fhir"
    session.token = TokenSet("at", "Bearer", "user/*.rs")
    return session


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(sessions.time, "time", lambda: self.now)


@pytest.mark.parametrize("kind", ["memory", "sql"])
@pytest.mark.parametrize(
    ("age", "kept"),
    [(599, True), (600, False)],
    ids=["just-inside-10-minutes", "at-10-minutes"],
)
def test_a_launch_on_its_way_lives_10_minutes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str, age: int, kept: bool
) -> None:
    clock = Clock(monkeypatch)
    store = _store(kind, tmp_path)
    pending, signed_in, demo = new_session(), _signed_in(), new_session()
    demo.demo = True
    for session in (pending, signed_in, demo):
        store.save(session)
    clock.now += age
    assert (store.get(pending.id) is not None) is kept
    assert store.get(signed_in.id) is not None  # 8 hours from sign-in
    assert store.get(demo.id) is not None  # the demo clinic is used for longer


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_pre_login_sessions_are_bounded_signed_in_ones_are_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    clock = Clock(monkeypatch)
    store = _store(kind, tmp_path, max_prelogin=5)
    signed_in = [_signed_in() for _ in range(7)]
    pending = []
    for i in range(8):
        clock.now += 1
        session = new_session()
        store.save(session)
        pending.append(session)
        store.save(signed_in[i % 7])
    kept = [s for s in pending if store.get(s.id) is not None]
    assert kept == pending[3:]  # the 5 newest; the oldest went first
    assert all(store.get(s.id) is not None for s in signed_in)


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_signing_in_moves_a_session_out_of_the_bound(tmp_path: Path, kind: str) -> None:
    store = _store(kind, tmp_path, max_prelogin=1)
    session = new_session()
    store.save(session)
    session.iss, session.token = "http://ehr/fhir", TokenSet("at", "Bearer", "user/*.rs")
    store.save(session)
    for _ in range(3):
        store.save(new_session())
    assert store.get(session.id) is not None


def test_cookie_less_launches_keep_at_most_the_bound(ehr: AuthServerState) -> None:
    app = create_app(make_settings(ehr, max_prelogin_sessions=3))
    cookies = []
    for _ in range(6):
        with TestClient(app, base_url=APP_URL) as client:  # a new browser: no cookie
            response = start_launch(client, iss=ehr.fhir_base)
            assert response.status_code == 302
            cookie = response.cookies["bhi_session"]
            assert 'Max-Age=600' in response.headers["set-cookie"]  # not 8 hours
            cookies.append(cookie)
    store = app.state.store
    assert [store.get(c) is not None for c in cookies] == [False] * 3 + [True] * 3
