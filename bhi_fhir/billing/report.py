"""The ``bill`` command's report: one row per patient-month, the summary per result and the
not-billable reasons, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bhi_fhir.billing.ledger import (
    PatientMonth,
    Rejected,
)

CSV_COLUMNS = (
    "patient",
    "mrn",
    "month",
    "program",
    "month_kind",
    "diagnosis",
    "billing_practitioner",
    "payer",
    "minutes",
    "recorded_minutes",
    "codes",
    "billable",
    "consent",
    "initiating_visit",
    "psychiatric_consultant",
    "reasons",
    "warnings",
    "result",
)


# ------------------------------------------------------------------------------- report


def report_row(month: PatientMonth, result: str, changes: Iterable[str] = ()) -> dict[str, Any]:
    return {
        "patient": month.patient,
        "mrn": month.mrn,
        "month": str(month.month),
        "program": month.program,
        "month_kind": month.month_kind,
        "diagnosis": [d.code for d in month.diagnoses],
        "billing_practitioner": month.billing_practitioner,
        "payer": month.payer,
        "minutes": month.minutes,
        "recorded_minutes": month.recorded_minutes,
        "codes": [{"code": c.code, "units": c.units} for c in month.codes],
        "billable": month.billable,
        "requirements": month.requirements,
        "reasons": [{"code": r.code, "text": r.text} for r in month.reasons],
        "warnings": list(month.warnings),
        "entries": list(month.entries),
        "result": result,
        "changed": list(changes),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many patient-months ended in each result."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["result"]] = counts.get(row["result"], 0) + 1
    return dict(sorted(counts.items()))


def reason_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many patient-months each not-billable reason held back (a workflow gap shows)."""
    counts: dict[str, int] = {}
    for row in rows:
        for reason in row["reasons"]:
            counts[reason["code"]] = counts.get(reason["code"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        req = row["requirements"]
        writer.writerow(
            {
                **{
                    k: row[k]
                    for k in CSV_COLUMNS
                    if k in row and not isinstance(row[k], list | dict)
                },
                "diagnosis": " ".join(row["diagnosis"]),
                "codes": " ".join(f"{c['code']}x{c['units']}" for c in row["codes"]),
                "consent": req.get("consent"),
                "initiating_visit": req.get("initiating_visit"),
                "psychiatric_consultant": req.get("psychiatric_consultant", ""),
                "reasons": "; ".join(r["text"] for r in row["reasons"]),
                "warnings": "; ".join(row["warnings"]),
            }
        )
    return buffer.getvalue()


def print_table(rows: list[dict[str, Any]], rejected: list[Rejected], console: Console) -> None:
    table = Table(title="Billing report", show_lines=False)
    for column in (
        "Patient", "MRN", "Month", "Program", "Dx", "Billing practitioner", "Payer",
        "Min", "Codes", "Status", "Result",
    ):  # fmt: skip
        table.add_column(column)
    for row in rows:
        status = "billable" if row["billable"] else " ".join(r["code"] for r in row["reasons"])
        kind = f" ({row['month_kind']})" if row["month_kind"] else ""
        cells = (
            row["patient"],
            row["mrn"] or "",
            row["month"],
            row["program"] + kind,
            " ".join(row["diagnosis"]),
            row["billing_practitioner"] or "",
            row["payer"] or "",
            str(row["minutes"]),
            " ".join(f"{c['code']}x{c['units']}" for c in row["codes"]),
            status,
            row["result"],
        )
        # Text cells: references, MRNs and payer names come from the input, never markup.
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)
    for item in rejected:
        minutes = f" ({item.minutes} min)" if item.minutes is not None else ""
        console.print(
            Text.assemble(("not counted", "yellow"), f" {item.reference}{minutes}: {item.reason}")
        )
