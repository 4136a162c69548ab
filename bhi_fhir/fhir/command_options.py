"""The options the commands share besides a server's auth (:mod:`.auth_factory`): the practice
plan (``--plan``), the operational store (``--state-url``) and the practice's day (``--today``).

Each turns its option into the value the command needs, or stops the command before any work
with one line on stderr and the exit code of what was wrong
(:func:`~bhi_fhir.exit_codes.exit_code_of`).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from bhi_fhir.exit_codes import exit_code_of
from bhi_fhir.fhir.auth_factory import stop
from bhi_fhir.paths import default_plan_path
from bhi_fhir.practice_plan import PracticePlan, PracticePlanError, load_practice_plan
from bhi_fhir.store import Store, StoreOpenError

__all__ = ["load_plan", "open_store", "parse_today"]


def open_store(state_url: str | None) -> Store:
    """The operational store of ``--state-url``; a URL that cannot be used exits 78, a
    database that does not answer 69 (try again later), each as one line on stderr."""
    try:
        return Store.open(state_url)
    except StoreOpenError as exc:
        stop(f"--state-url: {exc}", exit_code_of(exc))


def load_plan(path: Path | None) -> PracticePlan:
    """The practice plan of ``--plan`` (default: the shipped example); one that cannot be used
    exits 78 (configuration) with one line on stderr, before any work."""
    try:
        return load_practice_plan(path or default_plan_path())
    except PracticePlanError as exc:
        stop(str(exc), exit_code_of(exc))


def parse_today(text: str | None) -> date | None:
    """``--today`` as a date (None when not given); not YYYY-MM-DD is a usage error."""
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise typer.BadParameter(f"--today expects YYYY-MM-DD, got {text!r}") from None
