"""The BHI workflow engine: PlanDefinitions + a patient's facts + the practice plan → a Plan.

Pure: no I/O, no clock, no environment (``today`` reaches it through the timeline's facts).
``bhi_fhir.workflow.pipeline`` runs it over files; ``bhi_fhir.workflow.cli`` is the
``bhi-fhir apply`` command.
"""

from bhi_fhir.workflow.caseload import assign_care_manager, caseload_manager, count_caseloads
from bhi_fhir.workflow.engine import WorkflowError, apply
from bhi_fhir.workflow.fhirpath import Expression, ExpressionError, expression
from bhi_fhir.workflow.plan import Plan, PlannedWrite, Skipped, to_transaction_bundle
from bhi_fhir.workflow.plan_settings import timeline_settings
from bhi_fhir.workflow.protocol import Action, Protocol, ProtocolError, load_protocol
from bhi_fhir.workflow.validate import ResourceInvalid, validate_resource

__all__ = [
    "Action",
    "Expression",
    "ExpressionError",
    "Plan",
    "PlannedWrite",
    "Protocol",
    "ProtocolError",
    "ResourceInvalid",
    "Skipped",
    "WorkflowError",
    "apply",
    "assign_care_manager",
    "caseload_manager",
    "count_caseloads",
    "expression",
    "load_protocol",
    "timeline_settings",
    "to_transaction_bundle",
    "validate_resource",
]
