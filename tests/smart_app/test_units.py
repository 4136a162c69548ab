"""Small pure pieces: v1 scope mapping, PKCE, session stores, and ``bhi-fhir serve --demo``."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from smart_app.sessions import (
    LaunchContext,
    MemorySessionStore,
    PendingLaunch,
    SqlSessionStore,
    TokenSet,
    new_session,
)
from smart_app.smart import new_code_verifier, new_state, patient_level_only, s256, to_v1
from tests.smart_app.auth_server import free_port


@pytest.mark.parametrize(
    ("v2", "v1"),
    [  # scopes-and-launch-context.md l.80–84: .read→.rs, .write→.cud, .*→.cruds
        ("patient/Observation.rs", "patient/Observation.read"),
        ("patient/Observation.r", "patient/Observation.read"),
        ("patient/Task.cud", "patient/Task.write"),
        ("patient/Task.cu", "patient/Task.write"),
        ("patient/Task.cruds", "patient/Task.*"),
        ("user/*.cruds", "user/*.*"),
        ("patient/Observation.rs?category=survey", "patient/Observation.read"),
        ("openid", "openid"),
        ("patient/Patient.read", "patient/Patient.read"),
    ],
)
def test_v2_to_v1(v2: str, v1: str) -> None:
    assert to_v1(v2) == v1


def test_patient_level_only() -> None:
    assert patient_level_only("openid fhirUser patient/*.rs launch")
    assert not patient_level_only("patient/*.rs user/Patient.rs")


def test_pkce_s256_matches_rfc7636_appendix_b() -> None:
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    verifier = new_code_verifier()
    assert 43 <= len(verifier) <= 128
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert s256(verifier) == digest.rstrip(b"=").decode()


def test_state_has_at_least_122_bits() -> None:
    states = {new_state() for _ in range(100)}
    assert len(states) == 100
    assert all(len(base64.urlsafe_b64decode(s + "==")) * 8 >= 122 for s in states)


@pytest.mark.parametrize("kind", ["memory", "sql"])
def test_session_store_round_trip(kind: str, tmp_path: Path) -> None:
    store = (
        MemorySessionStore(60)
        if kind == "memory"
        else SqlSessionStore(f"sqlite:///{tmp_path / 's.db'}", 60)
    )
    session = new_session()
    session.iss = "http://ehr/fhir"
    session.token = TokenSet("at", "Bearer", "patient/*.rs", time.time() + 60, "rt")
    session.context = LaunchContext(patient="p1", fhir_context=[{"reference": "Encounter/e"}])
    session.pending["s"] = PendingLaunch("s", "http://ehr/fhir", "v", "http://t", "x", True, 1.0)
    store.save(session)
    loaded = store.get(session.id)
    assert loaded == session
    assert store.get("other") is None
    store.delete(session.id)
    assert store.get(session.id) is None


def test_sql_store_keeps_only_a_hash_of_the_session_id(tmp_path: Path) -> None:
    store = SqlSessionStore(f"sqlite:///{tmp_path / 's.db'}", 60)
    session = new_session()
    store.save(session)
    assert session.id.encode() not in (tmp_path / "s.db").read_bytes()


def test_expired_session_is_gone() -> None:
    store = MemorySessionStore(0)
    session = new_session()
    session.created_at -= 1
    store.save(session)
    assert store.get(session.id) is None


def test_serve_demo_command() -> None:
    port = free_port()
    exe = Path(sys.executable).with_name("bhi-fhir")
    process = subprocess.Popen(
        [str(exe), "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/demo", follow_redirects=True)
                break
            except httpx.TransportError:
                if time.time() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        assert page.status_code == 200
        assert "DEMO" in page.text and 'id="registry"' in page.text
    finally:
        process.terminate()
        process.wait(timeout=10)
