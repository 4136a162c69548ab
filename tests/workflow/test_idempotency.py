"""Every write is idempotent; crisis is never deduplicated away."""

from __future__ import annotations

import copy
import json

from bhi_fhir.workflow import apply, to_transaction_bundle

from .helpers import careplan, consent, contact, patient, persist, plan, protocol, score, timeline


def _scenario() -> tuple[list, list]:
    scores = [
        score("phq9", 15, 2, item9=1, ident="screen"),
        score("cssrs", None, 1, risk="high", ident="cssrs"),
        score("phq2", 4, 1, ident="phq2"),
        score("auditc", 5, 1, ident="audit"),
    ]
    return scores, [patient(), consent()]


def test_second_run_over_first_runs_output_creates_nothing() -> None:
    scores, resources = _scenario()
    first = apply(protocol(), timeline(scores, resources), plan())
    assert first.creates
    stored = persist(first.writes)
    second = apply(protocol(), timeline(scores, resources + stored), plan())
    assert second.creates == []
    assert second.updates == []  # nothing changed, so nothing is rewritten


def test_existing_active_resource_is_updated_with_if_match() -> None:
    scores = [score("phq9", 16, 65, ident="base"), score("phq9", 15, 3, ident="latest")]
    resources = [patient(), careplan(63), contact(3)]
    first = apply(protocol(), timeline(scores, resources), plan())
    (review,) = [w for w in first.writes if w.rule == "psychiatric-review"]
    stored = persist([review])
    stored[0]["status"] = "in-progress"  # the consultant has started on it
    stored[0]["owner"] = {"reference": "Practitioner/someone-else"}
    second = apply(protocol(), timeline(scores, resources + stored), plan())
    (update,) = [w for w in second.writes if w.rule == "psychiatric-review"]
    assert update.method == "update"
    assert update.if_match == 'W/"1"'
    assert update.resource["id"] == stored[0]["id"]
    assert update.resource["status"] == "in-progress"  # a person's progress is never reset
    entry = update.bundle_entry()
    assert entry["request"] == {
        "method": "PUT",
        "url": f"Task/{stored[0]['id']}",
        "ifMatch": 'W/"1"',
    }


def test_an_update_claims_the_profile_and_keeps_the_records_tags() -> None:
    """A record written before bhi-fhir claimed profiles (no meta.profile, a tag of its own)
    is updated with the ActivityDefinition's profile beside its tag; with nothing else
    changed it is not rewritten only to add the claim."""
    scores = [score("phq9", 16, 65, ident="base"), score("phq9", 15, 3, ident="latest")]
    resources = [patient(), careplan(63), contact(3)]
    first = apply(protocol(), timeline(scores, resources), plan())
    (review,) = [w for w in first.writes if w.rule == "psychiatric-review"]
    profile = review.resource["meta"]["profile"]
    assert profile == ["https://bhi-fhir.dev/fhir/StructureDefinition/bhi-task-psychiatric-review"]
    stored = persist([review])
    tag = {"system": "https://example.org/ehr", "code": "imported"}
    stored[0]["meta"] = {"versionId": "1", "tag": [tag]}
    unchanged = apply(protocol(), timeline(scores, resources + stored), plan())
    assert [w for w in unchanged.writes if w.rule == "psychiatric-review"] == []
    stored[0]["owner"] = {"reference": "Practitioner/someone-else"}
    second = apply(protocol(), timeline(scores, resources + stored), plan())
    (update,) = [w for w in second.writes if w.rule == "psychiatric-review"]
    assert update.resource["meta"]["profile"] == profile
    assert update.resource["meta"]["tag"] == [tag]


def test_completed_resource_is_not_reopened() -> None:
    scores = [score("cssrs", None, 1, risk="moderate", ident="c1")]
    first = apply(protocol(), timeline(scores, [patient()]), plan())
    stored = persist(first.writes)
    for resource in stored:
        resource["status"] = "completed"
    second = apply(protocol(), timeline(scores, [patient(), *stored]), plan())
    assert second.writes == []  # the finished assessment and referral cover the response


def test_a_newer_crisis_response_updates_the_open_assessment() -> None:
    # Kroenke 2001/SPRC SAFE-T: one open same-day assessment per patient; a newer crisis response
    # while it is open is more evidence for it, not a second ServiceRequest for the same unresolved
    # risk.
    earlier = [score("phq9", 8, 3, item9=1, ident="r1")]
    first = apply(protocol(), timeline(earlier, [patient()]), plan())
    stored = persist(first.writes)
    both = [*earlier, score("phq9", 9, 0, item9=2, ident="r2")]
    second = apply(protocol(), timeline(both, [patient(), *stored]), plan())
    crisis = [w for w in second.writes if w.rule == "crisis-assessment"]
    assert [w.method for w in crisis] == ["update", "update"]
    assert {w.identifier.split(":", 1)[1] for w in crisis} == {"QuestionnaireResponse/r1"}
    request = next(w.resource for w in crisis if w.resource_type == "ServiceRequest")
    task = next(w.resource for w in crisis if w.resource_type == "Task")
    assert request["supportingInfo"] == [
        {"reference": "QuestionnaireResponse/r1"},
        {"reference": "QuestionnaireResponse/r2"},
    ]
    assert task["reasonReference"] == {"reference": "QuestionnaireResponse/r2"}
    assert task["restriction"]["period"]["end"] == both[1].authored  # due the newest day
    # Re-run over the updated resources: nothing more.
    third = apply(protocol(), timeline(both, [patient(), *persist(crisis)]), plan())
    assert [w for w in third.writes if w.rule == "crisis-assessment"] == []


def test_after_the_assessment_is_finished_a_new_crisis_starts_a_new_one() -> None:
    # SPRC SAFE-T: repeat the assessment at any clinical change; a finished assessment covers only
    # the responses it listed.
    earlier = [score("phq9", 8, 5, item9=1, ident="r1")]
    stored = persist(apply(protocol(), timeline(earlier, [patient()]), plan()).writes)
    for resource in stored:
        resource["status"] = "completed"
    both = [*earlier, score("phq9", 9, 0, item9=2, ident="r2")]
    second = apply(protocol(), timeline(both, [patient(), *stored]), plan())
    created = [w for w in second.creates if w.rule == "crisis-assessment"]
    assert sorted(w.resource_type for w in created) == ["ServiceRequest", "Task"]
    assert {w.identifier.split(":", 1)[1] for w in created} == {"QuestionnaireResponse/r2"}


def test_two_crisis_responses_in_one_run_give_one_assessment() -> None:
    scores = [score("phq9", 8, 3, item9=1, ident="a"), score("cssrs", None, 1, risk="low")]
    result = apply(protocol(), timeline(scores, [patient()]), plan())
    crisis = [w for w in result.writes if w.rule == "crisis-assessment"]
    assert sorted(w.resource_type for w in crisis) == ["ServiceRequest", "Task"]
    (task,) = [w for w in crisis if w.resource_type == "Task"]
    (request,) = [w for w in crisis if w.resource_type == "ServiceRequest"]
    assert task.resource["focus"]["reference"] == request.full_url
    assert len(request.resource["supportingInfo"]) == 2
    assert task.identifier.endswith("QuestionnaireResponse/a")  # the episode's first response
    assert "2 unassessed crisis screens" in task.reason


def test_identifiers_are_deterministic() -> None:
    scores, resources = _scenario()
    a = apply(protocol(), timeline(scores, resources), plan())
    b = apply(protocol(), timeline(scores, resources), plan())
    assert to_transaction_bundle(a) == to_transaction_bundle(b)


def test_identifier_carries_the_source_version() -> None:
    qr = {
        "resourceType": "QuestionnaireResponse",
        "id": "v",
        "meta": {"versionId": "3"},
        "subject": {"reference": "Patient/p1"},
    }
    result = apply(
        protocol(), timeline([score("phq9", 3, 1, item9=1, ident="v")], [patient(), qr]), plan()
    )
    assert result.writes[0].identifier.endswith("QuestionnaireResponse/v/_history/3")


def test_bundle_uses_conditional_create_on_the_identifier() -> None:
    scores, resources = _scenario()
    bundle = to_transaction_bundle(apply(protocol(), timeline(scores, resources), plan()))
    assert bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        assert entry["fullUrl"].startswith("urn:uuid:")
        request = entry["request"]
        assert request["method"] == "POST"
        value = entry["resource"]["identifier"][0]["value"]
        assert request["ifNoneExist"].startswith("identifier=https://bhi-fhir.dev/fhir/identifier")
        assert value.split(":")[0] in request["ifNoneExist"]


def test_inputs_are_not_modified() -> None:
    scores, resources = _scenario()
    tl = timeline(scores, [*resources, careplan(70), contact(40)])
    facts_before = copy.deepcopy(tl.facts)
    view_before = json.dumps(plan().fhirpath_view(), sort_keys=True)
    for _ in range(3):
        apply(protocol(), tl, plan())
    assert tl.facts == facts_before
    assert json.dumps(plan().fhirpath_view(), sort_keys=True) == view_before
