"""The CDS Hooks cards (pure): the workflow's planned writes as cards, and the billing month.

* Workflow cards (:func:`cards_for`): one card per :data:`CARD_KINDS` entry whose protocol rules
  plan writes for the patient; the suggestions are those writes (same business identifiers).
* The billing card (:func:`billing_card`): this month's counted care-management minutes
  (``bhi_fhir.billing.close_month``, the ledger ``bhi-fhir bill`` closes) are at most the
  practice plan's ``billing.near_threshold_minutes`` short of the next code's threshold
  (``bhi_fhir.billing.select_codes`` with the plan's thresholds: CPT descriptors and midpoint
  rule, CMS MLN909432).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from bhi_fhir.billing import Month, PatientMonth, close_month, group_by_patient, select_codes
from bhi_fhir.billing.codes import APCM_ADDON_CODES
from bhi_fhir.billing.rules import BillingRules, rules_from_plan
from bhi_fhir.codes import BHI_IDENTIFIER
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.workflow.plan import Plan, PlannedWrite, _renamed

logger = logging.getLogger(__name__)

APP_LINK_LABEL = "Open bhi-fhir for this patient"


@dataclass(frozen=True)
class CardKind:
    """One card: which protocol rules feed it, how urgent, what it says."""

    key: str
    indicator: str  # info | warning | critical (spec "Card Attributes")
    rules: tuple[str, ...]
    summary: str  # < 140 characters (spec)


# Rules of profiles/plandefinitions/bhi-protocol.json → the card that shows their writes.
CARD_KINDS: tuple[CardKind, ...] = (
    CardKind("crisis", "critical", ("crisis-assessment", "crisis-referral"),
             "Crisis risk on a recent screen: safety assessment not completed"),
    CardKind("engage", "warning", ("engage", "consent", "enroll"),
             "Positive behavioral health screen, not yet engaged in care"),
    CardKind("review", "warning", ("psychiatric-review",),
             "Enrolled and not improving in the review window: psychiatric case review"),
    CardKind("contact", "info", ("outreach",),
             "No care-manager contact or measurement within the practice's window"),
)


# --------------------------------------------------------------------------- cards


def app_link(app_url: str) -> dict[str, str]:
    """The SMART app link (spec "Link": type ``smart``): the EHR launches bhi-fhir at the
    patient in context."""
    return {"label": APP_LINK_LABEL, "url": app_url, "type": "smart"}


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join((BHI_IDENTIFIER, *parts))))


def _action_resources(group: list[PlannedWrite], patient: str) -> list[dict[str, Any]]:
    """The group's resources as one suggestion's actions.

    Spec "Action": a suggestion's actions SHOULD be processed by FHIR's transaction rules with
    the client's ``fhirServer`` as the base of each entry's inferred full URL (base/Type/id).
    The workflow's transaction links its new resources by ``urn:uuid`` fullUrls, which actions
    do not carry; so each new resource gets an id (stable: from that fullUrl and the patient)
    and the references between them become ``Type/id``, which the client's transaction
    resolves to what it created.
    """
    names = {
        w.full_url: f"{w.resource_type}/{uuid.uuid5(uuid.NAMESPACE_URL, f'{w.full_url}|{patient}')}"
        for w in group if w.method == "create" and w.full_url.startswith("urn:uuid:")
    }
    resources = []
    for write in group:
        resource: dict[str, Any] = _renamed(write.resource, names)
        if write.full_url in names:
            resource["id"] = names[write.full_url].split("/", 1)[1]
        resources.append(resource)
    return resources


def _suggestions(writes: list[PlannedWrite], titles: Mapping[str, str],
                 patient: str) -> list[dict[str, Any]]:
    """One suggestion per rule firing (its writes share the identifier key)."""
    groups: dict[tuple[str, str], list[PlannedWrite]] = {}
    for write in writes:
        groups.setdefault((write.rule, write.identifier.split(":", 1)[-1]), []).append(write)
    return [
        {
            "label": titles.get(rule, rule),
            "uuid": _uuid(*(w.identifier for w in group)),
            "isRecommended": True,
            "actions": [
                {"type": w.method, "description": w.reason[:500], "resource": resource}
                for w, resource in zip(group, _action_resources(group, patient), strict=True)
            ],
        }
        for (rule, _key), group in groups.items()
    ]


def _evidence(kind: CardKind, facts: Mapping[str, Any], writes: list[PlannedWrite],
              plan: PracticePlan) -> str:
    if kind.key == "crisis":
        crises = facts.get("crises") or []
        return "; ".join(
            f"{c.get('instrument', 'screen')} on {c.get('date', '?')}: {c.get('reason', '')}"
            for c in crises
        ) or "a crisis screen without a completed assessment"
    if kind.key == "contact":
        window = plan.handoffs.contact_interval_days
        contacts = (facts.get("contacts") or {}).get("daysWithout")
        measured = (facts.get("measurement") or {}).get("daysWithout")
        return (f"{contacts} days without care-manager contact (window {window} days); "
                f"{measured} days since the last PHQ-9/GAD-7 (cadence "
                f"{plan.handoffs.measurement_interval_days} days)")
    reasons = list(dict.fromkeys(w.reason for w in writes if w.reason))
    return "; ".join(reasons)[:500]


def cards_for(
    result: Plan, facts: Mapping[str, Any], plan: PracticePlan, *, titles: Mapping[str, str],
    protocol_url: str, app_url: str,
) -> list[dict[str, Any]]:
    """The cards for one patient's workflow plan (pure)."""
    cards = []
    for kind in CARD_KINDS:
        writes = [w for w in result.writes if w.rule in kind.rules]
        # An assessment already ordered and still open is still a crisis without a completed
        # assessment: the card stays (without suggestions: the order exists).
        open_crisis = kind.key == "crisis" and any(
            s.rule == "crisis-assessment" and s.why == "unchanged" for s in result.skipped
        )
        if not writes and not open_crisis:
            continue
        rules = sorted({w.rule for w in writes} or {"crisis-assessment"})
        card: dict[str, Any] = {
            "uuid": _uuid(result.patient, kind.key, *sorted(w.identifier for w in writes)),
            "summary": kind.summary,
            "indicator": kind.indicator,
            "detail": f"**Evidence:** {_evidence(kind, facts, writes, plan)}\n\n"
            f"Rule: {', '.join(titles.get(r, r) for r in rules)}.",
            "source": {"label": "bhi-fhir BHI protocol and practice plan", "url": protocol_url},
            "links": [app_link(app_url)],
        }
        suggestions = _suggestions(writes, titles, result.patient)
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "any"
        cards.append(card)
    return cards




# --------------------------------------------------------------------------- the billing month

BILLING_SUMMARY = "This month's care-management minutes are {short} short of {code}'s threshold"
# Where the minute thresholds come from: NGS Medicare's behavioral-health page (CoCM and general
# BHI codes and their times, per CMS MLN909432 and the CPT descriptors).
BILLING_SOURCE = {
    "label": "bhi-fhir billing rules: CPT time thresholds (CMS MLN909432)",
    "url": "https://www.ngsmedicare.com/web/ngs/mental-health?selectedArticleId=3421653",
}


@dataclass(frozen=True, slots=True)
class NextCode:
    """The first code (or add-on unit) more minutes this month would reach."""

    code: str
    units: int
    at_minutes: int
    short: int


def next_code(month: PatientMonth, rules: BillingRules, within: int) -> NextCode | None:
    """The first code ``month`` reaches with at most ``within`` more counted minutes, asking
    ``select_codes`` exactly as ``close_month`` does (the plan's thresholds, the payer's +99494
    cap, the billing clinician's qualification); None when nothing changes in that many minutes.
    The APCM behavioral-health add-ons are not time-based: never a card."""
    if within <= 0 or any(c.code in APCM_ADDON_CODES for c in month.codes):
        return None

    def billed(minutes: int) -> dict[str, int]:
        codes = select_codes(
            month.program, month.month_kind or "subsequent", minutes, setting=rules.setting,
            payer=rules.payer_rules(month.payer),
            clinician=rules.qualification_of(month.billing_practitioner),
            year=month.month.year, thresholds=rules.thresholds,
        )
        return {c.code: c.units for c in codes}

    now = billed(month.minutes)
    for more in range(1, within + 1):
        for code, units in billed(month.minutes + more).items():
            if units > now.get(code, 0):
                return NextCode(code, units, month.minutes + more, more)
    return None


def billing_card(
    resources: list[dict[str, Any]], today: date, plan: PracticePlan, *, app_url: str
) -> dict[str, Any] | None:
    """The card for a month close to a billing threshold, or None (pure).

    ``resources``: the patient's record, the Patient first (the time entries are its
    Encounters, consent its Consents). A record the ledger cannot read gives no card (logged by
    error type only), never a failed hook.
    """
    within = plan.billing.near_threshold_minutes
    if within <= 0:
        return None
    patient = f"Patient/{resources[0].get('id')}"
    rules = rules_from_plan(plan)
    month = Month(today.year, today.month)
    try:
        record = group_by_patient(resources).get(patient)
        months = close_month(record, month, rules)[0] if record is not None else []
        found = [(m, n) for m in months if (n := next_code(m, rules, within)) is not None]
    except Exception as exc:  # a record the ledger cannot read: no card, not a failed hook
        logger.warning("CDS Hooks: billing month not computed (%s)", type(exc).__name__)
        return None
    if not found:
        return None
    pm, nxt = min(found, key=lambda pair: pair[1].short)
    code = nxt.code if nxt.units == 1 else f"{nxt.code} (unit {nxt.units})"
    kind = f"{pm.month_kind} CoCM month" if pm.program == "cocm" else "general BHI month"
    billed = ", ".join(str(c) for c in pm.codes) or "nothing yet"
    return {
        "uuid": _uuid(patient, "billing", str(month), nxt.code, str(nxt.units)),
        "summary": BILLING_SUMMARY.format(short=nxt.short, code=code),
        "indicator": "info",
        "detail": f"**Evidence:** {pm.minutes} counted care-management minutes in {month} "
        f"({kind}, billing {billed}); {code} from {nxt.at_minutes} minutes.\n\n"
        f"Rule: the practice plan's billing thresholds; a card within "
        f"{within} minutes (billing.near_threshold_minutes).",
        "source": dict(BILLING_SOURCE),
        "links": [app_link(app_url)],
    }
