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


def coding(code: str, system: str = "http://loinc.org") -> dict[str, Any]:
    return {"valueCoding": {"system": system, "code": code}}


def response(
    items: list[dict[str, Any]], *, canonical: str | None = None, rid: str = "qr-1",
    patient: str = "p-1",
) -> dict[str, Any]:
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse", "id": rid, "status": "completed",
        "subject": {"reference": f"Patient/{patient}"}, "authored": "2026-11-02T10:00:00Z",
        "item": items,
    }
    if canonical:
        qr["questionnaire"] = canonical
    return qr


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
