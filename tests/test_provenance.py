"""The one Provenance builder alone (FHIR R4 Provenance, https://hl7.org/fhir/R4/provenance.html)."""

from __future__ import annotations

from fhir.resources.R4B.provenance import Provenance

from bhi_fhir.codes import BHI_IDENTIFIER, PROVENANCE_PROFILE
from bhi_fhir.provenance import DATA_OPERATION, PROVENANCE_PARTICIPANT, agent, provenance

DEVICE = {"type": "Device", "identifier": {"system": BHI_IDENTIFIER, "value": "bhi-fhir"}}


def test_minimal_provenance_is_valid_r4_and_keyed() -> None:
    resource = provenance(["urn:uuid:1"], key="k1", operation="CREATE",
                          recorded="2026-11-30T01:00:00+00:00", agents=[agent(DEVICE)])
    Provenance.model_validate(resource)
    assert resource["meta"] == {"profile": [PROVENANCE_PROFILE],
                                "tag": [{"system": BHI_IDENTIFIER, "code": "k1"}]}
    assert resource["activity"] == {"coding": [{"system": DATA_OPERATION, "code": "CREATE"}]}
    assert resource["target"] == [{"reference": "urn:uuid:1"}]
    assert "entity" not in resource and "reason" not in resource and "text" not in resource


def test_optional_parts_and_sources_once() -> None:
    reason = {"coding": [{"system": "https://example.org/rule", "code": "r"}], "text": "why"}
    resource = provenance(
        ["Encounter/1"], key="k2", operation="UPDATE", recorded="2026-11-30T01:00:00+00:00",
        agents=[agent({"reference": "Practitioner/u"}, role="author"),
                agent(DEVICE, on_behalf_of="Practitioner/u")],
        sources=["Encounter/a", "Encounter/b", "Encounter/a"], reason=reason,
        summary="billed <10> & more", occurred=("2026-10-01", "2026-10-31"),
    )  # fmt: skip
    Provenance.model_validate(resource)
    assert [e["what"]["reference"] for e in resource["entity"]] == ["Encounter/a", "Encounter/b"]
    assert resource["reason"] == [reason]
    assert resource["occurredPeriod"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert "billed &lt;10&gt; &amp; more" in resource["text"]["div"]
    author, device = resource["agent"]
    assert author["type"]["coding"][0] == {"system": PROVENANCE_PARTICIPANT, "code": "author"}
    assert device["onBehalfOf"] == {"reference": "Practitioner/u"}
