"""Bounded transactions keep every urn:uuid reference inside its transaction, and the outcome
of each write is counted once: from the answer, or from this run's Provenance on the server
when the answer was lost (FHIR R4 transaction atomicity, https://hl7.org/fhir/R4/http.html#transaction)."""

from __future__ import annotations

from typing import Any

import pytest

from bhi_fhir.sync import DEFAULT_AGENT, PatientContext, plan_patient
from bhi_fhir.sync.accounting import RUN_TAG_SYSTEM, Ledger, mark_run, outcomes
from bhi_fhir.sync.chunks import transaction_parts
from bhi_fhir.sync.planning import SyncWrite, provenance_for
from tests.instruments.screen_records import phq9_response
from tests.sync.test_observation_window import TODAY, _plan

R4_TRANSACTION = "FHIR R4 transaction, https://hl7.org/fhir/R4/http.html#trules"


def _long_plan(weeks: int) -> list[SyncWrite]:
    from datetime import timedelta

    from bhi_fhir.sync.runner import load_protocol_files

    context = PatientContext(
        "Patient/p1", {"resourceType": "Patient", "id": "p1"},
        [phq9_response("p1", (TODAY - timedelta(weeks=w)).isoformat(), rid=f"qr-{w}")
         for w in range(weeks)])
    plan = plan_patient(context, protocol=load_protocol_files(), practice_plan=_plan(None),
                        today=TODAY, recorded="2026-11-26T12:00:00Z", agent=DEFAULT_AGENT)
    return [*plan.writes, *plan.provenance]


def _urns(value: Any) -> set[str]:
    if isinstance(value, dict):
        ref = value.get("reference")
        own = {ref} if isinstance(ref, str) and ref.startswith("urn:uuid:") else set()
        return own.union(*(_urns(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_urns(v) for v in value))
    return set()


@pytest.mark.parametrize(
    ("weeks", "max_entries"),
    [
        # R4_TRANSACTION: a fullUrl resolves only inside its own Bundle.
        pytest.param(30, 100, id="360-entries-by-100"),
        pytest.param(30, 12, id="a-screening-set-exactly-fits"),
        pytest.param(30, 11, id="a-set-one-over-stands-alone"),
        pytest.param(3, 1000, id="small-one-part"),
    ],
)
def test_parts_are_bounded_and_reference_closed(weeks: int, max_entries: int) -> None:
    writes = _long_plan(weeks)
    parts = transaction_parts(writes, max_entries)
    assert sorted(w.full_url for part in parts for w in part) == sorted(
        w.full_url for w in writes)  # every write once
    for part in parts:
        inside = {w.full_url for w in part}
        referenced = set().union(*(_urns(w.resource) for w in part))
        own = {w.full_url for w in writes}
        assert referenced & own <= inside  # no reference to a write in another part
        unit_max = 12  # a PHQ-9 set: 9 items, total, panel, and its Provenance
        assert len(part) <= max(max_entries, unit_max)
    if len(writes) <= max_entries:
        assert len(parts) == 1
    else:
        assert len(parts) >= len(writes) // max(max_entries, 12)


def _prov(key: str, targets: list[str]) -> SyncWrite:
    return provenance_for(targets, key=key, rule="screening", reason="r", operation="CREATE",
                          sources=[], agent=DEFAULT_AGENT, recorded="2026-11-26T12:00:00Z")


def _create(ident: str) -> SyncWrite:
    return SyncWrite("screening", ident, "create", {"resourceType": "Observation"},
                     f"urn:uuid:{ident}", "r")


# (answers, this run's Provenance keys found, outcomes of [obs a, obs b, Provenance of both])
CASES = [
    pytest.param(["201", "201", "201"], set(), ["created"] * 3, id="all-created"),
    pytest.param(["200", "200", "200"], set(), ["existed"] * 3, id="existed-before"),
    # R4_TRANSACTION: atomic, so this run's Provenance means its targets were written with it.
    pytest.param(["200", "200", "200"], {"prov-ab"}, ["created"] * 3, id="an-earlier-attempt"),
    pytest.param(None, {"prov-ab"}, ["created"] * 3, id="answer-lost-committed"),
]


@pytest.mark.parametrize(("answered", "ours", "expected"), CASES)
def test_outcomes(answered: list[str] | None, ours: set[str], expected: list[str]) -> None:
    writes = [_create("a"), _create("b"), _prov("prov-ab", ["urn:uuid:a", "urn:uuid:b"])]
    assert outcomes(writes, answered, ours) == expected


def test_mark_run_tags_provenance_only_once() -> None:
    writes = [_create("a"), _prov("prov-a", ["urn:uuid:a"])]
    mark_run(writes, "run-1")
    mark_run(writes, "run-2")  # a later run re-planning the same write replaces it
    tags = writes[1].resource["meta"]["tag"]
    assert [t["code"] for t in tags if t["system"] == RUN_TAG_SYSTEM] == ["run-2"]
    assert "meta" not in writes[0].resource


def test_the_ledger_counts_each_identifier_once() -> None:
    ledger = Ledger()
    writes = [_create("a"), _prov("prov-a", ["urn:uuid:a"])]
    ledger.count(writes, ["created", "created"])
    ledger.count(writes, ["existed", "existed"])
    assert ledger.counted == {"a", "prov-a"}
