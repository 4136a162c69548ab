"""Instrument scoring: QuestionnaireResponse → Score. Pure."""

from bhi_fhir.instruments.result import SUICIDE_RISK, TOTAL_MISMATCH, InstrumentId, Score

__all__ = ["SUICIDE_RISK", "TOTAL_MISMATCH", "InstrumentId", "Score"]
