"""Reading from a FHIR server: what changed since the watermark, and each patient's context.

Requests, for ``n`` changed responses over ``p`` patients (page size ``c``, group size ``g``)::

    GET  metadata                                            1   (the server profile; sent
                                                                  with the search, not before)
    GET  QuestionnaireResponse?_lastUpdated=ge<wm>&_sort=_lastUpdated&_count=c
         &_include=QuestionnaireResponse:subject&_include=QuestionnaireResponse:questionnaire
                                                             ⌈n/c⌉ pages (includes ride along)
    POST base  (batch: one search per context type for g patients at once,
                e.g. CarePlan?patient=Patient/1,Patient/2,…&_count=500)   ⌈p/g⌉ (+ rare next pages)

``_include`` is sent only when the CapabilityStatement lists it (``searchInclude``); context
types the server cannot search are left out (and named in the report).

Screens stored as Observations are found too: when the server can search
Observation, one more search ``Observation?category=survey&_lastUpdated=ge<wm>&_sort=_lastUpdated``
(its own ⌈m/c⌉ pages) names the patients whose screening Observations changed — bhi-fhir's own
(``BHI_IDENTIFIER``) are left out, their response is the change — and each patient's context
holds their screening Observations (the instruments' codes) and screening DiagnosticReports
(the panel codes), and of Encounters and Procedures only care-manager contacts, so
``screening_scores`` sees every screen the way ``apply`` does.

Merged records: a changed record whose Patient has a ``link`` of type replaced-by (FHIR R4
Patient.link, https://hl7.org/fhir/R4/patient-definitions.html#Patient.link: "the patient
resource containing this link must no longer be used") brings the Patient it points to into
the read: its id rides in the group's batch when the Patient came with the responses
(``_include``), else one more batch per group reads the survivors of that group (and again for
a chain, at most ``_MERGE_HOPS`` times), never one request per patient.
``planning.merge_contexts`` then folds the replaced record into the survivor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from bhi_fhir.codes import BHI_ACTIVITY, BHI_IDENTIFIER, CARE_MANAGEMENT_CONTACT, LOINC
from bhi_fhir.fhir import (
    BadRequest,
    FhirClient,
    FhirError,
    InvalidResponse,
    ServerError,
    ServerProfile,
)
from bhi_fhir.fhir.bulk import ExportRequest, export
from bhi_fhir.fhirjson import entry_answer, patient_of, replaced_by
from bhi_fhir.instruments import INSTRUMENTS
from bhi_fhir.instruments.screens import OBSERVATION_KINDS, SCREEN_CODES
from bhi_fhir.sources import SourceError, read_resources
from bhi_fhir.sync.planning import PatientContext

__all__ = [
    "CONTEXT_TYPES",
    "Changed",
    "ServerInfo",
    "bulk_request",
    "fetch_bulk",
    "fetch_changed",
    "fetch_contexts",
    "fetch_info_with_changed",
    "fetch_server_info",
]

Resource = dict[str, Any]

# What the timeline reads about a patient, and the screening Observations we wrote before.
CONTEXT_TYPES = (
    "CarePlan", "Task", "ServiceRequest", "Encounter", "Consent", "Procedure",
    "QuestionnaireResponse", "Observation",
)  # fmt: skip
_QR_INCLUDES = ("QuestionnaireResponse:subject", "QuestionnaireResponse:questionnaire")
# Screens stored as Observations: US Core screening assessments and Synthea totals carry the
# category survey (US Core Observation Screening Assessment; Synthea 3.3); a screening report
# carries the panel code.
_SURVEY = ("category", "survey")
_PANEL_CODES = ",".join(f"{LOINC}|{s.panel_code}" for s in INSTRUMENTS if s.panel_code)
# A patient's screens stored as Observations, by code: the instruments' panel, total and item
# LOINC codes (what the scorer reads; a survey Observation of another kind — a social-needs
# panel, a fall scale — is not read). Codes without a system: a row that omits it still counts.
_SCREEN_OBSERVATION_CODES = ",".join(sorted(SCREEN_CODES))
# Of a patient's Encounters and Procedures the timeline reads only care-manager contacts
# (BHI_ACTIVITY care-management-contact, as the billing ledger and the app log them), and the
# workflow writes neither: years of an EHR's visits and procedures are left on the server.
_CONTACT = quote(f"{BHI_ACTIVITY}|{CARE_MANAGEMENT_CONTACT}", safe="/:|")
_CONTEXT_FILTERS = {"Encounter": f"type={_CONTACT}", "Procedure": f"code={_CONTACT}"}
# replaced-by links followed beyond the changed records: a chain is short, a cycle stops early.
_MERGE_HOPS = 4


@dataclass(frozen=True)
class ServerInfo:
    profile: ServerProfile
    qr_includes: tuple[str, ...]
    context_types: tuple[str, ...]
    missing_context: tuple[str, ...]
    screen_types: tuple[str, ...] = ()  # of Observation/DiagnosticReport, what can be searched


async def fetch_server_info(client: FhirClient) -> ServerInfo:
    """The profile plus the two facts it does not keep: ``searchInclude`` and search support.

    One request (``/metadata``); SMART discovery is the client's auth's business.
    """
    capability = await client.capabilities()
    profile = ServerProfile.from_documents(client.base_url, capability, None)
    includes: set[str] = set()
    for rest in capability.get("rest") or []:
        for entry in rest.get("resource") or []:
            if isinstance(entry, dict) and entry.get("type") == "QuestionnaireResponse":
                includes.update(str(i) for i in entry.get("searchInclude") or [])
    qr_includes = tuple(i for i in _QR_INCLUDES if i in includes or "*" in includes)
    context = tuple(t for t in CONTEXT_TYPES if profile.supports(t, "search-type"))
    missing = tuple(t for t in CONTEXT_TYPES if t not in context)
    screens = tuple(t for t in OBSERVATION_KINDS if profile.supports(t, "search-type"))
    return ServerInfo(profile, qr_includes, context, missing, screens)


@dataclass
class Changed:
    responses: list[Resource] = field(default_factory=list)
    patients: dict[str, Resource] = field(default_factory=dict)  # "Patient/<id>" → Patient
    questionnaires: dict[str, Resource] = field(default_factory=dict)  # canonical → Q
    server_time: str | None = None  # when the server ran the search (first page meta)
    last_updated: str | None = None  # the newest response's (or Observation's) lastUpdated
    invalid: list[str] = field(default_factory=list)  # responses skipped (ids only)
    # Changed screening Observations not written by bhi-fhir (their patients are re-planned).
    observations: list[Resource] = field(default_factory=list)
    # Every patient's context, already read from a Bulk Data export (fetch_bulk): the context
    # reads then ask the server nothing.
    preloaded: dict[str, PatientContext] | None = None

    @property
    def patients_changed(self) -> list[str]:
        """The patients of the changed responses and screening Observations, in order."""
        return list(dict.fromkeys(
            str(r["subject"]["reference"]) for r in (*self.responses, *self.observations)))

    def newer(self, resource: Mapping[str, Any]) -> None:
        updated = (resource.get("meta") or {}).get("lastUpdated")
        if isinstance(updated, str) and (self.last_updated is None or updated > self.last_updated):
            self.last_updated = updated


def _search_shape(info: ServerInfo | None) -> tuple[tuple[str, ...], bool]:
    """What :func:`fetch_changed` takes from ``info``: the ``_include``s of the response
    search, and whether screening Observations are searched. None: what HAPI and most servers
    declare (both includes, Observation searchable)."""
    if info is None:
        return _QR_INCLUDES, True
    return info.qr_includes, "Observation" in info.screen_types


async def fetch_info_with_changed(
    client: FhirClient,
    since: str | None,
    *,
    where: Sequence[tuple[str, str]] = (),
    page_size: int = 200,
) -> tuple[ServerInfo, Changed | None]:
    """:func:`fetch_server_info` and :func:`fetch_changed` at once, so the CapabilityStatement
    costs no round trip of its own before the search: the search is sent as for a server
    declaring both includes and Observation search while ``/metadata`` is read.

    A server that does not declare an ``_include`` either answers it anyway (what it includes
    is the subject or questionnaire the reads would fetch) or ignores it: that answer is used.
    The ``Changed`` is None when the search failed (e.g. a strict server refusing an
    undeclared ``_include``) or the statement says Observation cannot be searched (its
    screens are not read from such a server): then search again with the ``ServerInfo``
    (after checking it), as one after the other."""
    info_read = asyncio.ensure_future(fetch_server_info(client))
    changed: Changed | None
    try:
        changed = await fetch_changed(client, None, since, where=where, page_size=page_size)
    except FhirError:  # searched again once the statement is known (and checked)
        changed = None
    except BaseException:
        info_read.cancel()
        await asyncio.gather(info_read, return_exceptions=True)
        raise
    info = await info_read
    if not _search_shape(info)[1]:
        changed = None
    return info, changed


async def fetch_changed(
    client: FhirClient,
    info: ServerInfo | None,
    since: str | None,
    *,
    where: Sequence[tuple[str, str]] = (),
    page_size: int = 200,
) -> Changed:
    """Every QuestionnaireResponse with ``_lastUpdated >= since`` (all pages), plus includes;
    the changed screening Observations are searched at the same time (one round trip fewer
    before the first write: neither search needs the other's answer). ``info`` None: as a
    server declaring both includes and Observation search (:func:`fetch_info_with_changed`)."""
    includes, screens = _search_shape(info)
    params: list[tuple[str, str | int]] = []
    if since:
        params.append(("_lastUpdated", f"ge{since}"))
    params += [("_sort", "_lastUpdated"), ("_count", page_size)]
    params += [("_include", i) for i in includes]
    params += list(where)
    changed = Changed()
    observations = (
        asyncio.ensure_future(_changed_observations(client, changed, since, where, page_size))
        if screens else None
    )
    try:
        await _changed_responses(client, changed, params)
    except BaseException:
        if observations is not None:  # the run ends: do not leave the other search running
            observations.cancel()
            await asyncio.gather(observations, return_exceptions=True)
        raise
    if observations is not None:
        await observations
    return changed


async def _changed_responses(
    client: FhirClient, changed: Changed, params: Sequence[tuple[str, str | int]]
) -> None:
    async for page in client.search_bundle("QuestionnaireResponse", params):
        if changed.server_time is None:
            changed.server_time = (page.get("meta") or {}).get("lastUpdated")
        for entry in page.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            kind = resource.get("resourceType")
            mode = (entry.get("search") or {}).get("mode", "match")
            if kind == "QuestionnaireResponse" and mode == "match":
                subject = (resource.get("subject") or {}).get("reference")
                if not isinstance(subject, str) or not subject.startswith("Patient/"):
                    changed.invalid.append(
                        f"QuestionnaireResponse/{resource.get('id')}: skipped, no Patient subject"
                    )
                    continue
                changed.responses.append(resource)
                changed.newer(resource)
            elif kind == "Patient" and resource.get("id"):
                changed.patients[f"Patient/{resource['id']}"] = resource
            elif kind == "Questionnaire" and resource.get("url"):
                changed.questionnaires[str(resource["url"])] = resource


async def _changed_observations(
    client: FhirClient, changed: Changed, since: str | None,
    where: Sequence[tuple[str, str]], page_size: int,
) -> None:
    """The survey Observations changed since ``since``. Of ``where``, the parameters every
    resource has (``_tag``, ``_security``, …: a run scoped to a tag stays scoped) and the
    patient restriction apply; the others are QuestionnaireResponse's."""
    params: list[tuple[str, str | int]] = [_SURVEY]
    if since:
        params.append(("_lastUpdated", f"ge{since}"))
    params += [("_sort", "_lastUpdated"), ("_count", page_size)]
    params += [(k, v) for k, v in where
               if k.startswith("_") or k.split(":", 1)[0] in ("subject", "patient")]
    async for page in client.search_bundle("Observation", params):
        for resource in _matches([page]):
            if resource.get("resourceType") != "Observation" or _own_identifiers(resource):
                continue
            subject = (resource.get("subject") or {}).get("reference")
            if not isinstance(subject, str) or not subject.startswith("Patient/"):
                continue  # not a patient's screen (a group's, a device's)
            changed.observations.append(resource)
            changed.newer(resource)


def _search_url(resource_type: str, patients: Sequence[str], page_size: int) -> str:
    refs = ",".join(patients)
    url = f"{resource_type}?patient={quote(refs, safe='/,')}&_count={page_size}"
    if resource_type == "Observation":  # only the screening Observations we wrote
        url += "&identifier=" + quote(f"{BHI_IDENTIFIER}|", safe="/:") + "&_elements=identifier"
    if resource_type in _CONTEXT_FILTERS:
        url += "&" + _CONTEXT_FILTERS[resource_type]
    return url


async def fetch_contexts(
    client: FhirClient,
    info: ServerInfo,
    patients: Sequence[str],
    changed: Changed,
    *,
    page_size: int = 500,
) -> dict[str, PatientContext]:
    """Each patient's context: one batch of searches for the whole group when possible; and
    the context of the Patient each replaced record's replaced-by link names (module doc)."""
    known = [replaced_by(changed.patients[p]) for p in patients if p in changed.patients]
    wanted = list(dict.fromkeys([*patients, *(s for s in known if s is not None)]))
    contexts = await _read_contexts(client, info, wanted, changed, page_size)
    for _ in range(_MERGE_HOPS):
        successors = (replaced_by(c.patient_resource) for c in list(contexts.values())
                      if c.patient_resource is not None)
        more = list(dict.fromkeys(s for s in successors if s is not None and s not in contexts))
        if not more:
            break
        contexts.update(await _read_contexts(client, info, more, changed, page_size))
    return contexts


async def _read_contexts(
    client: FhirClient, info: ServerInfo, patients: Sequence[str], changed: Changed,
    page_size: int,
) -> dict[str, PatientContext]:
    if changed.preloaded is not None:
        return {p: changed.preloaded.get(p) or PatientContext(p, changed.patients.get(p))
                for p in patients}
    contexts = {p: PatientContext(p, changed.patients.get(p)) for p in patients}
    urls = [_search_url(t, patients, page_size) for t in info.context_types]
    refs = quote(",".join(patients), safe="/,")
    if "Observation" in info.screen_types:  # screens stored as Observations, whole
        urls.append(f"Observation?patient={refs}&code={quote(_SCREEN_OBSERVATION_CODES, safe=',')}"
                    f"&_count={page_size}")
    if "DiagnosticReport" in info.screen_types:  # Synthea's report around a total
        urls.append(f"DiagnosticReport?patient={refs}&code={quote(_PANEL_CODES, safe='/:,|')}"
                    f"&_count={page_size}")
    missing_patients = [p for p in patients if p not in changed.patients]
    if missing_patients:
        ids = ",".join(p.split("/", 1)[1] for p in missing_patients)
        urls.append(f"Patient?_id={quote(ids, safe=',')}&_count={page_size}")
    pages: list[Resource] = []
    # HAPI and others declare only "transaction" yet accept batch: try it, else search one by one.
    if info.profile.batch or info.profile.transaction:
        try:
            pages = await _batch_search(client, urls)
        except (BadRequest, ServerError):
            pages = []
        else:
            urls = []
    for url in urls:
        pages += [p async for p in client.search_bundle(url)]
    for resource in _matches(pages):
        _file(resource, contexts)
    for qr in changed.responses:  # the changed ones, even if the context search lagged
        ctx = contexts.get(qr["subject"]["reference"])
        if ctx is not None and not any(r.get("id") == qr.get("id") for r in ctx.responses):
            ctx.responses.append(qr)
    for obs in changed.observations:  # likewise the changed screening Observations
        ctx = contexts.get(obs["subject"]["reference"])
        if ctx is not None and not any(r.get("resourceType") == "Observation"
                                       and r.get("id") == obs.get("id") for r in ctx.resources):
            ctx.resources.append(obs)
    return contexts


async def _batch_search(client: FhirClient, urls: Sequence[str]) -> list[Resource]:
    pages: list[Resource] = []
    if urls:
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": u}} for u in urls],
        }
        response = await client.batch(bundle)
        for url, entry in zip(urls, response.get("entry") or [], strict=False):
            answer = entry_answer(entry)
            page = entry.get("resource")
            if not answer.ok or not isinstance(page, dict):
                raise InvalidResponse(
                    f"context search {url.split('?', 1)[0]} answered {answer.status}")
            pages.append(page)
            pages += [p async for p in _next_pages(client, page)]
    return pages


async def _next_pages(client: FhirClient, page: Mapping[str, Any]) -> Any:
    link = next(
        (lk.get("url") for lk in page.get("link") or [] if lk.get("relation") == "next"), None
    )
    if not link:
        return
    first = True
    async for more in client.search_bundle(str(link)):
        first = False
        yield more
    if first:
        raise InvalidResponse("context search: next page missing")


def _matches(pages: Iterable[Resource]) -> Iterable[Resource]:
    for page in pages:
        for entry in page.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and (entry.get("search") or {}).get(
                "mode", "match"
            ) == "match":
                yield resource


def _own_identifiers(resource: Mapping[str, Any]) -> list[str]:
    """The ``BHI_IDENTIFIER`` values of a resource bhi-fhir wrote."""
    return [
        str(ident["value"]) for ident in resource.get("identifier") or []
        if isinstance(ident, Mapping) and ident.get("system") == BHI_IDENTIFIER
        and isinstance(ident.get("value"), str)
    ]


def _file(resource: Resource, contexts: dict[str, PatientContext]) -> None:
    kind = resource.get("resourceType")
    if kind == "Patient":
        ctx = contexts.get(f"Patient/{resource.get('id')}")
        if ctx is not None and ctx.patient_resource is None:
            ctx.patient_resource = resource
        return
    own = _own_identifiers(resource) if kind == "Observation" else []
    if own:  # ours (_elements=identifier: no subject); identifiers say enough
        for value in own:
            # screening identifiers start with the response: "QuestionnaireResponse/…#…"
            for ctx in contexts.values():
                ctx.observation_ids.add(value)
        return
    # Any other Observation came from the survey search: a screen, filed with its patient.
    ref = patient_of(resource)
    ctx = contexts.get(ref) if ref else None
    if ctx is None:
        return
    if kind == "QuestionnaireResponse":
        ctx.responses.append(resource)
    else:
        ctx.resources.append(resource)


# --- the first run over a population, from a Bulk Data export (sync --bulk) -------------------


def bulk_request(info: ServerInfo, where: Sequence[tuple[str, str]] = ()) -> ExportRequest:
    """A system-level export of what a first run reads by searches: Patients, Questionnaires,
    every QuestionnaireResponse, the context types the server can search, screening
    Observations (category survey, and bhi-fhir's own by identifier) and screening reports
    (the panel codes). Of ``where``, the parameters every resource has (``_tag`` …) narrow
    every type but Questionnaire (as the search's ``_include`` reads them unscoped), and all of
    them QuestionnaireResponse — one ``_typeFilter`` per search the first run would make."""
    common = [(k, v) for k, v in where if k.startswith("_")]
    types = list(dict.fromkeys(("Patient", "Questionnaire", "QuestionnaireResponse",
                                *info.context_types, *info.screen_types)))
    filters: list[str] = []
    for kind in types:
        if kind == "Questionnaire":
            continue
        if kind == "Observation":
            searches = [[_SURVEY]]
            if "Observation" in info.context_types:
                searches.append([("identifier", f"{BHI_IDENTIFIER}|")])
        elif kind == "DiagnosticReport":
            searches = [[("code", _PANEL_CODES)]]
        else:
            searches = [[]]
        own = list(where) if kind == "QuestionnaireResponse" else common
        filters += [f"{kind}?{urlencode([*search, *own])}" for search in searches
                    if search or own]
    return ExportRequest(types=tuple(types), type_filters=tuple(filters))


async def fetch_bulk(
    client: FhirClient, info: ServerInfo, folder: Path, *,
    where: Sequence[tuple[str, str]] = (),
) -> Changed:
    """:func:`fetch_changed` for a first run (no watermark) from a Bulk Data export into
    ``folder`` (:mod:`bhi_fhir.fhir.bulk`: resumable, the folder is kept), with every
    patient's context read from the same files (``Changed.preloaded``). ``server_time`` is the
    export's ``transactionTime``: the next run searches from there."""
    result = await export(client, bulk_request(info, where), folder)
    changed = Changed(server_time=result.transaction_time, preloaded={})
    contexts: dict[str, PatientContext] = {}
    for item in read_resources([folder]):
        if isinstance(item, SourceError):
            changed.invalid.append(f"{item.file}: unreadable line in the export ({item.line})")
            continue
        kind = item["resourceType"]
        if kind == "Questionnaire":
            if item.get("url"):
                changed.questionnaires[str(item["url"])] = item
            continue
        if kind == "Patient" and item.get("id"):
            changed.patients[f"Patient/{item['id']}"] = item
            continue
        ref = patient_of(item)
        subject = (item.get("subject") or {}).get("reference")
        if ref is None or (kind == "QuestionnaireResponse" and subject != ref):
            if kind == "QuestionnaireResponse":
                changed.invalid.append(
                    f"QuestionnaireResponse/{item.get('id')}: skipped, no Patient subject")
            continue
        ctx = contexts.setdefault(ref, PatientContext(ref))
        own = _own_identifiers(item) if kind == "Observation" else []
        if own:
            ctx.observation_ids.update(own)
        elif kind == "QuestionnaireResponse":
            ctx.responses.append(item)
            changed.responses.append(item)
            changed.newer(item)
        else:
            ctx.resources.append(item)
            if kind == "Observation" and subject == ref and _is_survey(item):
                changed.observations.append(item)
                changed.newer(item)
    for ref, ctx in contexts.items():
        ctx.patient_resource = changed.patients.get(ref)
    changed.preloaded = contexts
    return changed


def _is_survey(observation: Mapping[str, Any]) -> bool:
    return any(coding.get("code") == _SURVEY[1]
               for category in observation.get("category") or [] if isinstance(category, dict)
               for coding in category.get("coding") or [] if isinstance(coding, dict))
