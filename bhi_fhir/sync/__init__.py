"""The sync service: changed screenings on a FHIR server → the BHI workflow → writes back.

``run_sync(SyncConfig(server=...))`` runs one pass and returns a :class:`RunReport`;
``bhi_fhir.sync.cli`` is the ``bhi-fhir sync`` command (not imported here, so importing the
pipeline does not pull in typer and rich).
"""

from bhi_fhir.sync.planning import Change, PatientContext, PatientPlan, SyncWrite, plan_patient
from bhi_fhir.sync.report import PatientDiff, Problem, RunReport
from bhi_fhir.sync.runner import DEFAULT_AGENT, SyncConfig, default_plan_path, run_sync

__all__ = [
    "DEFAULT_AGENT",
    "Change",
    "PatientContext",
    "PatientDiff",
    "PatientPlan",
    "Problem",
    "RunReport",
    "SyncConfig",
    "SyncWrite",
    "default_plan_path",
    "plan_patient",
    "run_sync",
]
