"""LOINC-coded Questionnaires for every instrument, built from the instrument specs.

``profiles/questionnaires/*.json`` is this module's output (regenerate with
``python -m bhi_fhir.instruments.questionnaires profiles/questionnaires``; a test checks the
committed files match). Answer options carry ``itemWeight`` and ``ordinalValue`` so any
SDC-aware tool scores them as we do. Where the LOINC item codes are not verified
(PHQ-A items, GAD-2 panel/total, EPDS items) items carry no code, only our linkId.
EPDS items are integer items 0–3 (the reverse-scored form's points are entered directly, as
the Danish KL-gateway EPDS Questionnaire does) so no unverified answer codes are needed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from bhi_fhir.instruments import auditc, cssrs, phqa
from bhi_fhir.instruments.registry import INSTRUMENTS
from bhi_fhir.instruments.spec import InstrumentSpec, Item
from bhi_fhir.instruments.weights import LOINC_SYSTEM

CANONICAL_BASE: Final = "https://bhi-fhir.dev/fhir/Questionnaire"
ITEM_WEIGHT: Final = "http://hl7.org/fhir/StructureDefinition/itemWeight"
ORDINAL_VALUE: Final = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

Answer = tuple[str, str, int | None]  # LA code, display, points

FREQUENCY: Final[tuple[Answer, ...]] = (  # LOINC answer list LL358-3
    ("LA6568-5", "Not at all", 0),
    ("LA6569-3", "Several days", 1),
    ("LA6570-1", "More than half the days", 2),
    ("LA6571-9", "Nearly every day", 3),
)
DIFFICULTY: Final[tuple[Answer, ...]] = (  # PHQ-9 item 69722-7, LOINC (not scored)
    ("LA6572-7", "Not difficult at all", None),
    ("LA6573-5", "Somewhat difficult", None),
    ("LA6575-0", "Very difficult", None),
    ("LA6574-3", "Extremely difficult", None),
)
YES_NO: Final[tuple[Answer, ...]] = (("LA33-6", "Yes", 1), ("LA32-8", "No", 0))  # Columbia triage
AUDIT_C: Final[dict[str, tuple[Answer, ...]]] = {  # US Core AUDIT-C
    auditc.Q1: (("LA6270-8", "Never", 0), ("LA18926-8", "Monthly or less", 1),
                ("LA18927-6", "2-4 times a month", 2), ("LA18928-4", "2-3 times a week", 3),
                ("LA18929-2", "4 or more times a week", 4)),
    auditc.Q2: (("LA15694-5", "1 or 2", 0), ("LA15695-2", "3 or 4", 1),
                ("LA18930-0", "5 or 6", 2), ("LA18931-8", "7 to 9", 3),
                ("LA18932-6", "10 or more", 4)),
    auditc.Q3: (("LA6270-8", "Never", 0), ("LA18933-4", "Less than monthly", 1),
                ("LA18876-5", "Monthly", 2), ("LA18891-4", "Weekly", 3),
                ("LA18934-2", "Daily or almost daily", 4)),
}


def _answers(spec: InstrumentSpec, item: Item) -> tuple[Answer, ...] | None:
    if spec.id == "epds":
        return None
    if spec.id == "auditc":
        return AUDIT_C.get(item.key)
    if spec.id == "cssrs" or item.key in (phqa.SERIOUS_THOUGHTS, phqa.EVER_ATTEMPTED,
                                          "phqa-past-year"):
        return YES_NO
    if item.key in ("69722-7", "phqa-difficulty"):
        return DIFFICULTY
    return FREQUENCY


def _option(code: str, display: str, points: int | None) -> dict[str, Any]:
    option: dict[str, Any] = {
        "valueCoding": {"system": LOINC_SYSTEM, "code": code, "display": display}
    }
    if points is not None:
        option["extension"] = [
            {"url": ITEM_WEIGHT, "valueDecimal": points},
            {"url": ORDINAL_VALUE, "valueDecimal": points},
        ]
    return option


def _item(spec: InstrumentSpec, item: Item) -> dict[str, Any] | None:
    if item.key in (cssrs.RISK_LEVEL, auditc.SINGLE_QUESTION_SCREEN):
        return None  # a derived level / a different screen: not asked on this form
    out: dict[str, Any] = {"linkId": item.key, "text": item.text}
    if item.key[:1].isdigit():
        out["code"] = [{"system": LOINC_SYSTEM, "code": item.key, "display": item.text}]
    answers = _answers(spec, item)
    if answers is None:
        out["type"] = "integer"
    else:
        out["type"] = "choice"
        out["answerOption"] = [_option(*answer) for answer in answers]
    out["required"] = item.required
    enable = _enable_when(spec, item)
    if enable:
        out["enableWhen"] = enable
    return out


def _enable_when(spec: InstrumentSpec, item: Item) -> list[dict[str, Any]]:
    if spec.id == "auditc" and item.key in (auditc.Q2, auditc.Q3):
        # "Never" on Q1 skips Q2 and Q3 (WHO AUDIT guidelines, Babor 2001; auditc.skipped)
        never = {"system": LOINC_SYSTEM, "code": "LA6270-8", "display": "Never"}
        return [{"question": auditc.Q1, "operator": "!=", "answerCoding": never}]
    if spec.id != "cssrs":
        return []
    parent = {cssrs.Q3: cssrs.Q2, cssrs.Q4: cssrs.Q2, cssrs.Q5: cssrs.Q2,
              cssrs.Q6B: cssrs.Q6}.get(item.key)
    if parent is None:
        return []
    yes = {"system": LOINC_SYSTEM, "code": "LA33-6", "display": "Yes"}
    return [{"question": parent, "operator": "=", "answerCoding": yes}]


def build(spec: InstrumentSpec) -> dict[str, Any]:
    q: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": spec.id,
        "url": f"{CANONICAL_BASE}/{spec.id}",
        "version": "1.0.0",
        "name": spec.id.upper(),
        "title": spec.title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": f"{spec.title} as scored by bhi-fhir. Source: {spec.source}.",
    }
    if spec.panel_code:
        q["code"] = [{"system": LOINC_SYSTEM, "code": spec.panel_code, "display": spec.title}]
    q["item"] = [built for item in spec.items if (built := _item(spec, item))]
    return q


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path("profiles/questionnaires")
    out.mkdir(parents=True, exist_ok=True)
    for spec in INSTRUMENTS:
        (out / f"{spec.id}.json").write_text(json.dumps(build(spec), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

__all__ = ["build"]
