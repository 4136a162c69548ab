"""The protected HAPI's scope rules (tools/hapi/gateway/smart_gateway.py): which SMART scopes
grant which interaction on which resource type, and what each request needs.

Scope syntax and the v1 → v2 map: SMART App Launch 2.2, scopes-and-launch-context.md
(``system/<Type|*>.<c r u d s>``; ``.read`` → ``.rs``, ``.write`` → ``.cud``,
``.*`` → ``.cruds``).
The interaction of each REST call: FHIR R4 http.html (read, search, create, update, patch, delete,
history, transaction/batch).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _gateway() -> ModuleType:
    path = ROOT / "tools/hapi/gateway/smart_gateway.py"
    spec = importlib.util.spec_from_file_location("smart_gateway", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gw = _gateway()


@pytest.mark.parametrize(
    ("scope", "resource_type", "interaction", "allowed"),
    [
        ("system/*.rs", "Patient", "r", True),
        ("system/*.rs", "Patient", "s", True),
        ("system/*.rs", "Patient", "c", False),
        ("system/*.rs system/*.cu", "Observation", "u", True),
        ("system/*.rs system/*.cu", "Observation", "d", False),
        ("system/Patient.rs", "Patient", "s", True),
        ("system/Patient.rs", "Observation", "s", False),
        ("system/Observation.cruds", "Observation", "d", True),
        ("system/*.read", "Task", "s", True),  # v1 .read = rs
        ("system/*.write", "Task", "c", True),  # v1 .write = cud
        ("system/*.write", "Task", "r", False),
        ("system/*.*", "Task", "d", True),  # v1 .* = cruds
        ("system/Observation.rs?category=survey", "Observation", "s", False),  # not evaluated
        ("patient/*.rs", "Patient", "r", False),  # not a system scope
        ("user/*.cruds", "Patient", "r", False),
        ("", "Patient", "r", False),
        ("system/*.s", "?", "s", True),  # a page of an earlier search: any search grant
        ("system/*.r", "?", "s", False),
    ],
    ids=[
        "rs-read", "rs-search", "rs-no-create", "cu-update", "cu-no-delete",
        "type-scope", "type-scope-other-type", "type-cruds-delete", "v1-read", "v1-write",
        "v1-write-no-read", "v1-star", "v2-constraint-not-granted", "patient-scope",
        "user-scope", "no-scope", "paging-with-search", "paging-without-search",
    ],
)
def test_scope_grants(scope: str, resource_type: str, interaction: str, allowed: bool) -> None:
    assert gw.allows(gw.granted(scope), resource_type, interaction) is allowed


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/Patient/1", [("Patient", "r")]),
        ("GET", "/Patient/1/_history/2", [("Patient", "r")]),
        ("GET", "/Patient", [("Patient", "s")]),
        ("POST", "/Patient/_search", [("Patient", "s")]),
        ("GET", "/Patient/_history", [("Patient", "s")]),
        ("POST", "/Observation", [("Observation", "c")]),
        ("PUT", "/Observation/9", [("Observation", "u")]),
        ("PUT", "/Observation", [("Observation", "u")]),  # conditional update
        ("PATCH", "/Observation/9", [("Observation", "u")]),
        ("DELETE", "/Observation/9", [("Observation", "d")]),
        ("DELETE", "/Observation", [("Observation", "d")]),  # conditional delete
        ("GET", "/", [("?", "s")]),  # ?_getpages=…
        ("GET", "/_history", [("*", "s")]),
        ("POST", "/$export", [("*", "r")]),
    ],
    ids=[
        "read", "vread", "search", "search-post", "type-history", "create", "update",
        "conditional-update", "patch", "delete", "conditional-delete", "paging",
        "system-history", "system-operation",
    ],
)
def test_what_a_request_needs(method: str, path: str, needed: list[tuple[str, str]]) -> None:
    assert gw.interactions(method, path, None) == needed


def test_a_transaction_needs_every_entrys_interaction() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": "Patient?identifier=x"}},
        {"request": {"method": "POST", "url": "Task", "ifNoneExist": "identifier=a|b"}},
        {"request": {"method": "PUT", "url": "CarePlan/7"}},
    ]}
    needed = gw.interactions("POST", "/", json.dumps(bundle).encode())
    assert needed == [("Patient", "s"), ("Task", "c"), ("CarePlan", "u")]
    grants = gw.granted("system/*.rs system/*.cu")
    assert all(gw.allows(grants, t, i) for t, i in needed)
    assert not all(gw.allows(gw.granted("system/*.rs"), t, i) for t, i in needed)


@pytest.mark.parametrize(
    "body",
    [b"<Bundle/>", b'{"resourceType": "Patient"}', b'{"resourceType": "Bundle", "entry": [{}]}'],
    ids=["not-json", "not-a-bundle", "entry-without-request"],
)
def test_an_unreadable_bundle_is_refused(body: bytes) -> None:
    with pytest.raises(gw.Refused) as refused:
        gw.interactions("POST", "/", body)
    assert refused.value.status == 403
