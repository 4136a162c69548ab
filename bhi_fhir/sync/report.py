"""The run report: what a sync did (or would do), as text for people and JSON for machines.

Only ids, identifiers, rule ids, counts and error messages — never resource content.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bhi_fhir.sync.planning import Change

__all__ = ["PatientDiff", "Problem", "RunReport"]


@dataclass(frozen=True, slots=True)
class Problem:
    """A skipped input, a refused or failed write; ``retry`` = a later run may succeed.

    ``cause`` (failures talking to the server) is one of ``bhi_fhir.fhir.errors.CAUSES``:
    authorization, configuration, refused (held for an operator), transient.
    """

    subject: str  # "Patient/<id>", "QuestionnaireResponse/<id>", "Task" (a type), "run"
    stage: str  # read | score | plan | write | refused | run
    message: str
    retry: bool = False
    cause: str | None = None


@dataclass(slots=True)
class PatientDiff:
    patient: str
    changes: list[Change] = field(default_factory=list)


@dataclass(slots=True)
class RunReport:
    run_id: str
    server: str
    dry_run: bool
    since: str | None
    watermark: str | None = None
    status: str = "running"  # ok | partial | failed
    duration_s: float = 0.0
    requests: int = 0
    responses: int = 0  # changed QuestionnaireResponses found
    patients: int = 0
    unrecognised: int = 0  # responses to questionnaires we do not score
    future_dated: int = 0  # screens authored after the run's today: not facts, only counted
    # Responses older than the plan's sync.backfill_days: facts, but no Observations written.
    before_backfill: int = 0
    planned: dict[str, Counter[str]] = field(default_factory=dict)  # rule → {create, update, …}
    written: Counter[str] = field(default_factory=Counter)  # created / updated / existed
    provenance: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    diffs: list[PatientDiff] = field(default_factory=list)  # filled on dry runs
    # Patients held in the store after this run (refused writes, awaiting retry or an
    # operator: ``bhi-fhir sync --failed``), by cause of their last failure.
    pending: Counter[str] = field(default_factory=Counter)

    def causes(self) -> Counter[str]:
        """Failures by cause (authorization, configuration, refused, transient)."""
        return Counter(p.cause for p in self.problems if p.cause)

    def count_changes(self, changes: list[Change]) -> None:
        for change in changes:
            self.planned.setdefault(change.rule, Counter())[change.change] += 1

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.stage != "refused"]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run": self.run_id,
            "server": self.server,
            "dryRun": self.dry_run,
            "status": self.status,
            "since": self.since,
            "watermark": self.watermark,
            "durationSeconds": round(self.duration_s, 3),
            "httpRequests": self.requests,
            "responses": self.responses,
            "patients": self.patients,
            "unrecognisedResponses": self.unrecognised,
            "futureDatedScreens": self.future_dated,
            "beforeBackfill": self.before_backfill,
            "actions": {rule: dict(sorted(c.items())) for rule, c in sorted(self.planned.items())},
            "written": dict(sorted(self.written.items())),
            "provenance": dict(sorted(self.provenance.items())),
            "refused": [asdict(p) for p in self.problems if p.stage == "refused"],
            "errors": [asdict(p) for p in self.errors],
            "failuresByCause": dict(sorted(self.causes().items())),
            "pending": {"patients": sum(self.pending.values()),
                        "byCause": dict(sorted(self.pending.items()))},
        }
        if self.dry_run:
            data["diff"] = [
                {
                    "patient": d.patient,
                    "changes": [
                        {
                            "rule": c.rule,
                            "resourceType": c.resource_type,
                            "identifier": c.identifier,
                            "change": c.change,
                            "reason": c.reason,
                        }
                        for c in d.changes
                    ],
                }
                for d in self.diffs
            ]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        lines: list[str] = []
        if self.dry_run:
            for diff in self.diffs:
                lines.append(diff.patient)
                for c in diff.changes:
                    reason = f" — {c.reason}" if c.reason else ""
                    lines.append(
                        f"  {c.change:<10} {c.rule:<20} {c.resource_type:<15} {c.identifier}"
                        f"{reason}"
                    )
            lines.append("")
        mode = "dry run (nothing written)" if self.dry_run else "sync"
        lines.append(f"{mode} {self.run_id} against {self.server}: {self.status}")
        lines.append(
            f"  {self.responses} changed responses, {self.patients} patients, "
            f"{self.unrecognised} unrecognised; since {self.since or 'the beginning'}"
            f" → watermark {self.watermark or '-'}"
        )
        if self.future_dated:
            lines.append(f"  future-dated: {self.future_dated} screens after today, not read")
        if self.before_backfill:
            lines.append(f"  backfill: {self.before_backfill} responses older than the plan's "
                         "sync.backfill_days, not written as Observations")
        lines.append(f"  {self.duration_s:.1f}s, {self.requests} HTTP requests")
        if self.planned:
            lines.append("  actions:")
            for rule, counts in sorted(self.planned.items()):
                summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                lines.append(f"    {rule:<20} {summary}")
        if self.written:
            lines.append(
                "  written: " + ", ".join(f"{k} {v}" for k, v in sorted(self.written.items()))
            )
        if self.provenance:
            lines.append(
                "  provenance: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.provenance.items()))
            )
        causes = self.causes()
        if causes:
            lines.append(
                "  failures by cause: " + ", ".join(f"{k} {v}" for k, v in sorted(causes.items()))
            )
        if self.pending:
            lines.append(
                f"  pending: {sum(self.pending.values())} patients held for retry or an operator"
                " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.pending.items()))
                + "; bhi-fhir sync --failed lists them)"
            )
        for problem in self.problems:
            if problem.cause == "refused":
                again = " (held: retried with backoff until it succeeds or is resolved)"
            else:
                again = " (will be retried next run)" if problem.retry else ""
            cause = f" [{problem.cause}]" if problem.cause else ""
            lines.append(f"  {problem.stage}{cause}: {problem.subject}: {problem.message}{again}")
        return "\n".join(lines)
