"""Build QuestionnaireResponses for tests: LOINC-coded, by item key, in several encodings."""

from __future__ import annotations

from typing import Any

PHQ9 = ["44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
        "44260-8"]
GAD7 = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
PHQA = [f"phqa-{n}" for n in range(1, 10)]
EPDS = [f"epds-{n}" for n in range(1, 11)]
FREQ = {0: "LA6568-5", 1: "LA6569-3", 2: "LA6570-1", 3: "LA6571-9"}
YES, NO = "LA33-6", "LA32-8"
AUDIT = {"Q1": {0: "LA6270-8", 1: "LA18926-8", 2: "LA18927-6", 3: "LA18928-4", 4: "LA18929-2"},
         "Q2": {0: "LA15694-5", 1: "LA15695-2", 2: "LA18930-0", 3: "LA18931-8", 4: "LA18932-6"},
         "Q3": {0: "LA6270-8", 1: "LA18933-4", 2: "LA18876-5", 3: "LA18891-4", 4: "LA18934-2"}}
AUDIT_LINK_IDS = {"Q1": "/68518-0", "Q2": "/68519-8", "Q3": "/68520-6"}  # US Core AUDIT-C


def coding(code: str, system: str = "http://loinc.org") -> dict[str, Any]:
    return {"valueCoding": {"system": system, "code": code}}


def response(
    items: list[dict[str, Any]], *, canonical: str | None = None, rid: str = "qr-1",
    patient: str = "p-1", status: str | None = "completed",
) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": rid, "status": status,
        "subject": {"reference": f"Patient/{patient}"}, "authored": "2026-11-02T10:00:00Z",
        "item": items,
    }
    if canonical:
        qr["questionnaire"] = canonical
    if status is None:
        del qr["status"]
    return qr


def audit(q1: int | None, q2: int | None, q3: int | None) -> list[dict[str, Any]]:
    """AUDIT-C items by points (US Core AUDIT-C LA codes); None leaves the item unanswered."""
    points = {"Q1": q1, "Q2": q2, "Q3": q3}
    return [{"linkId": AUDIT_LINK_IDS[q], "answer": [coding(AUDIT[q][p])]}
            for q, p in points.items() if p is not None]


def frequency(keys: list[str], points: list[int], prefix: str = "/") -> list[dict[str, Any]]:
    """Items answered with the LL358-3 LA codes; linkIds like LHC-Forms ("/44250-9")."""
    return [{"linkId": f"{prefix}{k}", "answer": [coding(FREQ[p])]} for k, p in
            zip(keys, points, strict=True)]


def integers(keys: list[str], points: list[int]) -> list[dict[str, Any]]:
    return [{"linkId": k, "answer": [{"valueInteger": p}]} for k, p in
            zip(keys, points, strict=True)]


def yes_no(answers: dict[str, bool]) -> list[dict[str, Any]]:
    return [{"linkId": k, "answer": [coding(YES if v else NO)]} for k, v in answers.items()]


def spread(total: int, n: int, top: int = 3) -> list[int]:
    """n item points summing to ``total``, filling items to ``top`` from the first."""
    points = []
    for _ in range(n):
        take = min(top, total)
        points.append(take)
        total -= take
    assert total == 0, "total too large for the item count"
    return points
