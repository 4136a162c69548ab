"""The practice dashboard: the program's figures over a period (``bhi_fhir.metrics``).

* ``GET /dashboard?period=2026-Q4`` — every metric with its definition and source, a chart
  (Chart.js, vendored) and its table; the page prints as the quarterly review (print CSS).
* ``GET /dashboard/{metric}.csv?period=…`` — one metric's table as CSV (``all.csv``: every
  metric in one long table, as ``bhi-fhir report --format csv``). A GET with no side effect:
  it reads what the page reads, writes nothing to the EHR or the store.

Who: clinicians (the registry's rule: never a patient-facing user, never a launch authorized
for one patient only), since the figures cover the whole caseload.

Where the figures come from: the registry read model's rows (who is enrolled, their care
manager and record status; ``bhi_fhir.registry``) and each patient's record from the EHR, read
into an *episode* (``bhi_fhir.metrics.episode``). Episodes are kept in the app's memory keyed
by the row's read time: a row that sync, a notification or the app refreshed since is read
again, the rest are not, so a view of 1,000 unchanged patients is one database read and the
pure computation. The dashboard never builds the read model (that is the registry page's first
view or ``bhi-fhir registry``): without one it says so. The demo computes live.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from bhi_fhir.fhir import FhirError
from bhi_fhir.measures.common import Period
from bhi_fhir.measures.report import MEASURES
from bhi_fhir.metrics.figures import (
    Figures,
    episodes_of,
    figures,
    measure_titles,
    metric_csv,
    parse_period,
    report_csv,
)
from bhi_fhir.practice_plan import PracticePlan
from bhi_fhir.registry import compute_rows
from bhi_fhir.registry.model import enrollment_rule_of, server_key
from bhi_fhir.store import Store
from bhi_fhir.store.registry import read_registry, registry_built_at
from smart_app.data import ClinicSource
from smart_app.deps import Refusal, SessionDep, TemplatesDep, render
from smart_app.ehr_errors import ehr_refusal
from smart_app.registry import _allowed as registry_access  # the registry's clinician rule
from smart_app.registry import registry_store
from smart_app.views import SourceDep, practice_plan, today_of

__all__ = ["EpisodeCache", "current_quarter", "dashboard_figures", "router", "stored_rows"]

logger = logging.getLogger(__name__)

router = APIRouter()

ALL = "all"  # /dashboard/all.csv: every metric in one long table (as ``report --format csv``)
_CACHE_KEYS = 8  # (server, period, day) combinations kept; older ones are dropped


def current_quarter(today: date) -> str:
    return f"{today.year}-Q{(today.month - 1) // 3 + 1}"


class EpisodeCache:
    """Episodes per (server, period, day), each with the read time of the registry row it was
    computed with; least recently used combinations are dropped past ``_CACHE_KEYS``."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, str, str],
                                   dict[str, tuple[str, dict[str, Any]]]] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
        entry = self._entries.setdefault(key, {})
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_KEYS:
            self._entries.popitem(last=False)
        return entry


def _cache(request: Request) -> EpisodeCache:
    cache: EpisodeCache | None = getattr(request.app.state, "dashboard_episodes", None)
    if cache is None:
        cache = request.app.state.dashboard_episodes = EpisodeCache()
    return cache


def stored_rows(store: Store, server: str) -> list[dict[str, Any]]:
    """The read model's rows of ``server``, each with its full-precision read time: the
    episode kept for a row is reused only for the very read it was computed from (a refresh
    within the same second is still a new read)."""
    return [{**s.row, "read_at": s.read_at.isoformat()} for s in read_registry(store, server)]


def _titles() -> dict[str, str]:
    return measure_titles(list(MEASURES.values()))


async def dashboard_figures(
    rows: list[dict[str, Any]],
    source: ClinicSource,
    today: date,
    plan: PracticePlan | None,
    period: Period,
    kept: dict[str, tuple[str, dict[str, Any]]] | None = None,
) -> Figures:
    """The figures over the registry rows: each row's episode from ``kept`` when it was
    computed from the same read of the record (``read_at``), else from the record read now."""
    kept = {} if kept is None else kept
    by_id = {str(r["id"]): r for r in rows}
    for gone in set(kept) - set(by_id):
        del kept[gone]
    stale = [i for i, r in by_id.items()
             if i not in kept or kept[i][0] != str(r.get("read_at") or "")]
    if stale:
        records = await source.patients_resources(stale)
        fresh = episodes_of(records, today, plan, period, rows=by_id,
                            measures=list(MEASURES.values()))
        for patient, episode in fresh.items():
            kept[patient] = (str(by_id[patient].get("read_at") or ""), episode)
    episodes = [kept[i][1] for i in by_id if i in kept]
    return figures(episodes, today, plan, period, measure_titles=_titles(),
                   source="registry read model and EHR records")


async def _figures(request: Request, session: Any, source: ClinicSource,
                   period: Period) -> tuple[Figures | None, Mapping[str, Any]]:
    """The figures and the registry's freshness (None figures: no read model yet)."""
    today = today_of(request)
    plan = practice_plan(request)
    store = registry_store(request)
    try:
        if store is None:  # the demo: its clinic in memory, computed live
            enrolled = await source.enrolled_patients(enrollment_rule_of(plan))
            rows = list(compute_rows(await source.patients_resources(enrolled), today,
                                     plan).values())
            return await dashboard_figures(rows, source, today, plan, period), {"mode": "live"}
        assert session.iss is not None
        server = server_key(session.iss)
        rows = stored_rows(store, server)
        if not rows and registry_built_at(store, server) is None:
            return None, {"mode": "none"}
        key = (server, period.label, today.isoformat())
        result = await dashboard_figures(rows, source, today, plan, period,
                                         _cache(request).get(key))
        oldest = min((str(r["read_at"]) for r in rows), default=None)
        return result, {"mode": "store", "oldest": oldest[:19] if oldest else None}
    except FhirError as exc:
        raise ehr_refusal("Could not read the records for the dashboard", exc) from None


def _period(text: str | None, today: date) -> tuple[str, Period]:
    chosen = (text or current_quarter(today)).strip()
    try:
        return chosen, parse_period(chosen)
    except ValueError as exc:
        raise Refusal("Not a period", f"{exc}.", 400) from None


@router.get("/dashboard")
async def dashboard_page(
    request: Request,
    session: SessionDep,
    source: SourceDep,
    templates: TemplatesDep,
    period: str | None = None,
) -> Response:
    registry_access(session)
    today = today_of(request)
    chosen, span = _period(period, today)
    result, freshness = await _figures(request, session, source, span)
    return render(request, templates, "dashboard.html", {
        "session": session,
        "figures": result,
        "metrics": [m.as_dict() for m in result.metrics] if result else [],
        "period_text": chosen,
        "period": span,
        "today": today.isoformat(),
        "freshness": freshness,
        "quarters": _recent_quarters(today),
    })


def _recent_quarters(today: date) -> list[str]:
    year, quarter = today.year, (today.month - 1) // 3 + 1
    found = []
    for _ in range(4):
        found.append(f"{year}-Q{quarter}")
        year, quarter = (year - 1, 4) if quarter == 1 else (year, quarter - 1)
    return found


@router.get("/dashboard/{metric_id}.csv")
async def dashboard_csv(
    request: Request,
    metric_id: str,
    session: SessionDep,
    source: SourceDep,
    period: str | None = None,
) -> Response:
    registry_access(session)
    _chosen, span = _period(period, today_of(request))
    result, _freshness = await _figures(request, session, source, span)
    metric = next((m for m in result.metrics if m.id == metric_id), None) if result else None
    if result is None or (metric is None and metric_id != ALL):
        raise Refusal("No such figure", "That metric is not on the dashboard.", 404)
    name = f"bhi-{metric_id}-{span.label.replace('..', '_')}.csv"
    return Response(
        metric_csv(metric) if metric is not None else report_csv(result),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
