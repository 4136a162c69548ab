"""The synthetic clinic generator works at every size the tests and benchmarks use."""

from __future__ import annotations

import pytest

from tests.clinic_generator import clinic_generator


@pytest.mark.parametrize("patients", [1, 13, 66, 390, 1000])
def test_generates_any_size(patients: int) -> None:
    clinic = clinic_generator().generate(patients)
    assert len(clinic.by_type["Patient"]) == patients
    assert clinic.by_type["QuestionnaireResponse"]
