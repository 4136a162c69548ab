"""Resolve the points of one answer from the places FHIR records them (the ``itemWeight``
extension, https://build.fhir.org/ig/HL7/fhir-extensions/StructureDefinition-itemWeight.html;
fhirpath.js ``weight()``), in this order:

1. ``itemWeight`` (or the older ``ordinalValue``) on the Questionnaire's matching answerOption,
   when the Questionnaire is given;
2. the same extension on the answer's Coding;
3. the known LOINC answer codes (LA…), LOINC LL358-3, Columbia triage, US Core AUDIT-C;
4. the SDC ``CSPHQ9`` code system (its itemWeight property);
5. ``valueInteger`` / ``valueDecimal`` (an integral decimal) taken as the points;
   ``valueBoolean`` as 1/0 for the yes/no items of the C-SSRS and PHQ-A.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

LOINC_SYSTEM: Final = "http://loinc.org"
CSPHQ9_SYSTEM: Final = "http://hl7.org/fhir/uv/sdc/CodeSystem/CSPHQ9"

WEIGHT_EXTENSIONS: Final = (
    "http://hl7.org/fhir/StructureDefinition/itemWeight",
    "http://hl7.org/fhir/StructureDefinition/ordinalValue",
    "http://hl7.org/fhir/StructureDefinition/questionnaire-ordinalValue",  # STU3
)

# LOINC answer codes with their points. One table serves every instrument: no LA code below
# carries different points in two instruments.
LA_POINTS: Final[Mapping[str, int]] = {
    # LL358-3 PHQ/GAD frequency
    "LA6568-5": 0,  # Not at all
    "LA6569-3": 1,  # Several days
    "LA6570-1": 2,  # More than half the days
    "LA18938-3": 2,  # More days than not (GAD-7 item 2 in some LOINC-derived forms, e.g. LHC-Forms)
    "LA6571-9": 3,  # Nearly every day
    # C-SSRS and PHQ-A yes/no (Columbia triage)
    "LA33-6": 1,  # Yes
    "LA32-8": 0,  # No
    # AUDIT-C (US Core AUDIT-C)
    "LA6270-8": 0,  # Never (Q1 and Q3)
    "LA18926-8": 1,  # Monthly or less
    "LA18927-6": 2,  # 2-4 times a month
    "LA18928-4": 3,  # 2-3 times a week
    "LA18929-2": 4,  # 4 or more times a week
    "LA15694-5": 0,  # 1 or 2
    "LA15695-2": 1,  # 3 or 4
    "LA18930-0": 2,  # 5 or 6
    "LA18931-8": 3,  # 7 to 9
    "LA18932-6": 4,  # 10 or more
    "LA18933-4": 1,  # Less than monthly
    "LA18876-5": 2,  # Monthly
    "LA18891-4": 3,  # Weekly
    "LA18934-2": 4,  # Daily or almost daily
    # PHQ-9 functional difficulty 69722-7 (and the PHQ-A's difficulty item), LOINC 69722-7: the
    # rank in its published answer list. The item is not part of any total.
    "LA6572-7": 0,  # Not difficult at all
    "LA6573-5": 1,  # Somewhat difficult
    "LA6575-0": 2,  # Very difficult
    "LA6574-3": 3,  # Extremely difficult
}

CSPHQ9_POINTS: Final[Mapping[str, int]] = {
    "Not-at-all": 0,
    "Several-days": 1,
    "More than half the days": 2,
    "Nearly every day": 3,
}


class AnswerError(ValueError):
    """The answer has a value whose points cannot be known."""


def answer_points(answer: Mapping[str, Any], option_weights: Mapping[str, int] | None) -> int:
    """Points for one ``QuestionnaireResponse.item.answer``.

    ``option_weights`` maps ``system|code`` and bare ``code`` of the Questionnaire item's
    answerOptions to their weights (from ``questionnaire_weights``). Raises ``AnswerError``
    when no rule gives the answer a number.
    """
    coding = answer.get("valueCoding")
    if type(coding) is dict or isinstance(coding, Mapping):
        code = coding.get("code")
        system = coding.get("system")
        if option_weights and isinstance(code, str):
            found = option_weights.get(f"{system}|{code}", option_weights.get(code))
            if found is not None:
                return found
        own = _weight_extension(coding.get("extension"))
        if own is not None:
            return own
        if isinstance(code, str):
            if system in (None, LOINC_SYSTEM) and code in LA_POINTS:
                return LA_POINTS[code]
            if system == CSPHQ9_SYSTEM and code in CSPHQ9_POINTS:
                return CSPHQ9_POINTS[code]
        raise AnswerError(f"answer code {system or ''}|{code} has no known weight")
    if "valueInteger" in answer:
        return _integral(answer["valueInteger"])
    if "valueDecimal" in answer:
        return _integral(answer["valueDecimal"])
    if "valueBoolean" in answer and isinstance(answer["valueBoolean"], bool):
        return int(answer["valueBoolean"])
    raise AnswerError("answer has no coding, number or boolean")


def questionnaire_weights(q_item: Mapping[str, Any]) -> dict[str, int]:
    """Weights of a Questionnaire item's answerOptions, keyed ``system|code`` and ``code``."""
    weights: dict[str, int] = {}
    options = q_item.get("answerOption")
    if not isinstance(options, Sequence):
        return weights
    for option in options:
        if not isinstance(option, Mapping):
            continue
        coding = option.get("valueCoding")
        if not isinstance(coding, Mapping) or not isinstance(coding.get("code"), str):
            continue
        weight = _weight_extension(option.get("extension"))
        if weight is None:
            weight = _weight_extension(coding.get("extension"))
        if weight is not None:
            weights[f"{coding.get('system')}|{coding['code']}"] = weight
            weights.setdefault(coding["code"], weight)
    return weights


def _weight_extension(extensions: object) -> int | None:
    if extensions is None or not isinstance(extensions, Sequence):
        return None
    for ext in extensions:
        if isinstance(ext, Mapping) and ext.get("url") in WEIGHT_EXTENSIONS:
            for key in ("valueDecimal", "valueInteger"):
                if key in ext:
                    try:
                        return _integral(ext[key])
                    except AnswerError:
                        return None
    return None


def _integral(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise AnswerError(f"not a number: {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise AnswerError(f"not a number: {value!r}") from exc
    if number != number.to_integral_value():
        raise AnswerError(f"points must be whole numbers, got {value}")
    return int(number)


def parse_total(item: Mapping[str, Any]) -> float | None:
    """A total carried in the response: valueDecimal/Integer/Quantity, or a numeric valueString
    (US Core's 44261-6 example uses ``valueString: "12"``)."""
    for answer in item.get("answer") or ():
        if not isinstance(answer, Mapping):
            continue
        for key in ("valueDecimal", "valueInteger"):
            if key in answer and isinstance(answer[key], int | float) and not isinstance(
                answer[key], bool
            ):
                return float(answer[key])
        quantity = answer.get("valueQuantity")
        if isinstance(quantity, Mapping) and isinstance(quantity.get("value"), int | float):
            return float(quantity["value"])
        text = answer.get("valueString")
        if isinstance(text, str):
            try:
                return float(text.strip())
            except ValueError:
                return None
    return None
