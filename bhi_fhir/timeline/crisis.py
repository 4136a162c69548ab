"""Crisis answers and crisis episodes.

Crisis episodes: crisis responses (``crises``) not yet covered by a finished (terminal)
crisis request of the same rule form one open episode, so several unassessed crisis screens
give one same-day assessment, updated with the newest evidence, not one ServiceRequest each
(a second request for the same unresolved risk is noise). An episode keeps the identifier key
of its open request, else of its oldest response (deterministic: rule + source), lists every
response as evidence (``evidence``) and takes reason and date from the newest. A response
counts as covered once a terminal request lists it (identifier key, ``supportingInfo`` or
``reasonReference``). Referrals form one episode per C-SSRS risk: an escalation to a higher
risk is a new referral.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from bhi_fhir.fhirjson import Resource
from bhi_fhir.instruments.result import SUICIDE_RISK, Score
from bhi_fhir.timeline.model import TERMINAL_STATUSES
from bhi_fhir.timeline.refs import bhi_identifier, prune, unversioned

__all__ = ["PHQ9_ITEM9", "crisis_episodes", "crisis_facts", "crisis_reasons", "evidence_of"]

PHQ9_ITEM9: Final = "44260-8"  # LOINC, PHQ-9 item 9


def crisis_reasons(score: Score) -> list[str]:
    """Why a response needs a same-day assessment (PHQ-9 item 9, Kroenke 2001; PHQ-A suicide items,
    NIMH ASQ toolkit; C-SSRS risk, Columbia triage; EPDS item 10), or []."""
    reasons: list[str] = []
    if score.instrument in ("phq9", "phqa"):
        item9 = score.items.get(PHQ9_ITEM9)
        if item9:
            reasons.append(f"PHQ-9 item 9 = {item9}")
    if score.instrument == "cssrs" and score.severity in ("low", "moderate", "high"):
        reasons.append(f"C-SSRS risk {score.severity}")
    if not reasons and score.suicide_risk:
        label = {"phqa": "PHQ-A suicide question yes", "epds": "EPDS item 10 > 0"}.get(
            score.instrument or "", f"{score.instrument} {SUICIDE_RISK} flag"
        )
        reasons.append(label)
    if reasons and not score.final:  # a crisis answer is never lost, final or not
        reasons.append(f"response {score.status or 'without status'}, not final")
    return reasons



def evidence_of(resource: Resource) -> list[str]:
    refs: list[str] = []
    value = bhi_identifier(resource)
    if value is not None and ":" in value:
        refs.append(unversioned(value.split(":", 1)[1]))
    reasons = resource.get("reasonReference")
    for item in [*(resource.get("supportingInfo") or []), *(
        reasons if isinstance(reasons, list) else [reasons]
    )]:
        ref = item.get("reference") if isinstance(item, Mapping) else None
        if isinstance(ref, str) and ref.startswith("QuestionnaireResponse/"):
            refs.append(unversioned(ref))
    return list(dict.fromkeys(refs))



def crisis_episodes(
    crises: Sequence[dict[str, Any]],
    generated: Sequence[Resource],
    group_of: Callable[[str], str | None],
) -> list[dict[str, Any]]:
    """The open crisis episodes of one rule to write (see "Crisis episodes" above).

    ``generated`` are the patient's resources with that rule's identifier; ``group_of`` maps a
    response to its episode group (None: in no episode of this rule). The resources sharing a
    key are one request: once any of them is terminal (the clinician completed the Task) the
    request is finished and its responses are covered.
    """
    requests: dict[str, list[Resource]] = {}
    for resource in generated:
        value = bhi_identifier(resource) or ""
        requests.setdefault(value.split(":", 1)[1] if ":" in value else "", []).append(resource)
    covered: set[str] = set()
    open_: dict[str, tuple[str, list[str], str | None]] = {}
    for key, parts in sorted(
        requests.items(),
        key=lambda kv: (min(str(r.get("authoredOn") or "") for r in kv[1]), kv[0]),
    ):
        evidence = list(dict.fromkeys(ref for r in parts for ref in evidence_of(r)))
        if any(r.get("status") in TERMINAL_STATUSES for r in parts):
            covered.update(evidence)
            continue
        group = group_of(unversioned(key))
        if group is not None and group not in open_:
            since = min((str(r["authoredOn"]) for r in parts if r.get("authoredOn")), default=None)
            open_[group] = (key, evidence, since)
    pending: dict[str, list[dict[str, Any]]] = {}
    for crisis in crises:
        response = str(crisis.get("response") or "")
        group = group_of(response)
        if group is None or response in covered:
            continue
        pending.setdefault(group, []).append(crisis)
    episodes = []
    for group in sorted(pending):
        items = pending[group]
        newest = items[-1]
        key, evidence, since = open_.get(group) or (
            str(items[0].get("source")), [], items[0].get("date")
        )
        refs = list(dict.fromkeys([*evidence, *(str(c.get("response")) for c in items)]))
        sources = list(dict.fromkeys([key, *(str(c.get("source")) for c in items)]))
        episodes.append(
            prune(
                {
                    **newest,
                    "key": key,
                    "since": since,
                    "evidence": [{"reference": ref} for ref in refs],
                    "sources": sources,
                    "count": len(refs),
                }
            )
        )
    return episodes


def crisis_facts(
    pairs: Sequence[tuple[Score, Mapping[str, Any]]], within_days: int
) -> list[dict[str, Any]]:
    """The screens (score and its fact, oldest first) that need a same-day safety assessment:
    a crisis answer (:func:`crisis_reasons`) at most ``within_days`` old."""
    crises = []
    for score, fact in pairs:
        reasons = crisis_reasons(score)
        age = fact.get("daysAgo")
        if reasons and isinstance(age, int) and 0 <= age <= within_days:
            crises.append(
                prune(
                    {
                        "response": fact.get("response"),
                        "source": fact.get("source"),
                        "date": fact.get("date"),
                        "instrument": score.instrument,
                        "risk": score.severity if score.instrument == "cssrs" else None,
                        "item9": score.items.get(PHQ9_ITEM9),
                        "reason": "; ".join(reasons),
                    }
                )
            )
    return crises
