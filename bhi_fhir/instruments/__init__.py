"""Instrument scoring: QuestionnaireResponse → Score (+ screening Observations). Pure."""

from bhi_fhir.instruments.observations import full_url, screening_observations
from bhi_fhir.instruments.registry import BY_ID, INSTRUMENTS
from bhi_fhir.instruments.result import SUICIDE_RISK, TOTAL_MISMATCH, InstrumentId, Score
from bhi_fhir.instruments.scoring import score_response, sex_of

__all__ = [
    "BY_ID",
    "INSTRUMENTS",
    "SUICIDE_RISK",
    "TOTAL_MISMATCH",
    "InstrumentId",
    "Score",
    "full_url",
    "score_response",
    "screening_observations",
    "sex_of",
]
