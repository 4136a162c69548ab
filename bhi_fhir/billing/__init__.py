"""Billing: a time ledger of care-management minutes → the month's codes → a billing Encounter.

Pure core (no I/O, clock or environment): :mod:`.codes` (minutes → CPT/HCPCS codes),
:mod:`.ledger` (a patient-month: its codes and requirements), built from :mod:`.entries` (the
care-management Encounters read as time), :mod:`.record` (what the patient's record says),
:mod:`.counting` (which minutes count) and :mod:`.episodes` (initial or subsequent CoCM month),
:mod:`.encounter` (a billable month → US Core Encounter + Provenance, as a transaction),
:mod:`.writeback` (the month's bill vs the one on the server → create / update / nothing).
The shell is :mod:`.cli` (``bhi-fhir bill``). Sources: CMS MLN909432 "Behavioral Health
Integration Services", the CPT 99492-99494/99484 descriptors, NGS Medicare's CoCM/BHI pages.
"""

from bhi_fhir.billing._time import Month
from bhi_fhir.billing.codes import (
    BilledCode,
    MonthKind,
    PayerRules,
    Program,
    Qualification,
    Setting,
    Thresholds,
    UnsupportedBillingRules,
    select_codes,
)
from bhi_fhir.billing.encounter import billing_encounter, billing_provenance, billing_transaction
from bhi_fhir.billing.entries import LedgerEntry, Rejected, ledger_entries
from bhi_fhir.billing.ledger import PatientMonth, Reason, close_month, history_start
from bhi_fhir.billing.record import Diagnosis, PatientRecord, group_by_patient
from bhi_fhir.billing.representation import time_entry
from bhi_fhir.billing.rules import BillingRules, CodingKey, rules_from_plan
from bhi_fhir.billing.writeback import Write, plan_write

__all__ = [
    "BilledCode",
    "BillingRules",
    "CodingKey",
    "Diagnosis",
    "LedgerEntry",
    "Month",
    "MonthKind",
    "PatientMonth",
    "PatientRecord",
    "PayerRules",
    "Program",
    "Qualification",
    "Reason",
    "Rejected",
    "Setting",
    "Thresholds",
    "UnsupportedBillingRules",
    "Write",
    "billing_encounter",
    "billing_provenance",
    "billing_transaction",
    "close_month",
    "group_by_patient",
    "history_start",
    "ledger_entries",
    "plan_write",
    "rules_from_plan",
    "select_codes",
    "time_entry",
]
