"""A FHIR Bulk Data ``$export`` client: kick-off, polling, download to an export folder.

Bulk Data Access IG 2.0.0 (https://hl7.org/fhir/uv/bulkdata/export.html). Requests, with
``base`` the server's FHIR base URL::

    GET  base/metadata                              is $export offered at all?
    GET  base/$export?_type=…&_since=…              system level      (Prefer: respond-async)
    GET  base/Group/{id}/$export?…                  a Group's members
    GET  base/Patient/$export?…                     every patient
    POST base/Patient/$export   Parameters(patient=Patient/…)   some patients
         → 202 Accepted, Content-Location: the status URL
    GET  {status}   → 202 (X-Progress, Retry-After) … until 200 with the manifest
    GET  {output[].url}, {deleted[].url}, {error[].url}   each streamed to a file
    DELETE {status}                                  the server may drop its copies

The export folder is what ``apply`` and ``bill --input`` read (:mod:`bhi_fhir.sources`)::

    Patient.ndjson  Observation.ndjson  Observation.2.ndjson …   manifest ``output``
    deleted/Bundle.ndjson       transaction Bundles of DELETE entries (``deleted``): kept
    error/OperationOutcome.ndjson                    the server's errors (``error``)
    bhi-export.state            this client's state (JSON): resume after a crash

A file is written as ``NAME.part`` and renamed when complete, so a reader never sees half a
file. The state file records the request, the status URL, the manifest and each finished
file; a run over the same folder with the same request resumes: it polls the same status
URL (or downloads what is left) and skips finished files; a ``.part`` left by a crash is
downloaded again from its start. Downloads stream in chunks: memory stays flat however large
the files are.

Same token, same server: the status URL and, when the manifest says
``requiresAccessToken: true``, every file URL must be on the issuing server's origin (the
client's rule for ``next`` links and Location headers); files that need no token are fetched
without one, wherever they are. A server that does not offer ``$export`` (not in its
CapabilityStatement; 404, 405 or 501 on kick-off) is :class:`~bhi_fhir.fhir.errors.Unsupported`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bhi_fhir.exit_codes import EXIT_TEMPFAIL
from bhi_fhir.fhir import _retry
from bhi_fhir.fhir.client import FHIR_JSON, FhirClient, Resource
from bhi_fhir.fhir.errors import (
    BadRequest,
    FhirError,
    Gone,
    InvalidResponse,
    NotFound,
    RetryableError,
    ServerError,
    Unsupported,
    error_from_transport,
    outcome_message,
)

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "NDJSON",
    "STATE_FILE",
    "ExportFile",
    "ExportRequest",
    "ExportResult",
    "FolderInUse",
    "export",
    "read_state",
]

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = (NDJSON, "application/ndjson", "ndjson")
STATE_FILE = "bhi-export.state"
# The longest wait between status polls, whatever Retry-After asks (HAPI always says 120 s).
DEFAULT_MAX_POLL_INTERVAL = 300.0
_STATE_FORMAT = 1
# Kick-off statuses that mean "no $export here" (Bulk Data IG: a server without the
# operation answers as for any unknown operation).
_UNSUPPORTED = frozenset({404, 405, 501})
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{0,63}")
_OPERATION_NAMES = frozenset({"export", "$export"})


class FolderInUse(ValueError):
    """The export folder holds the state of another server's or another request's export."""

    exit_code = EXIT_TEMPFAIL  # busy: run again once the other export is done


@dataclass(frozen=True)
class ExportRequest:
    """What to export: system level (default), one Group, or patients (all, or these)."""

    group: str | None = None
    patients: tuple[str, ...] = ()  # ids or Patient/ids; empty with all_patients: every one
    all_patients: bool = False
    types: tuple[str, ...] = ()
    since: str | None = None
    type_filters: tuple[str, ...] = ()
    output_format: str = NDJSON

    def __post_init__(self) -> None:
        if self.group and (self.patients or self.all_patients):
            raise ValueError("export a Group or patients, not both")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format {self.output_format!r}: only NDJSON is read here")

    @property
    def level(self) -> str:
        if self.group:
            return "group"
        return "patient" if self.patients or self.all_patients else "system"

    @property
    def path(self) -> str:
        if self.group:
            return f"Group/{self.group}/$export"
        return "Patient/$export" if self.level == "patient" else "$export"

    def params(self) -> list[tuple[str, str]]:
        """The kick-off's query parameters (GET); repeated ``_typeFilter`` stays repeated."""
        params = [("_outputFormat", self.output_format)]
        if self.types:
            params.append(("_type", ",".join(self.types)))
        if self.since:
            params.append(("_since", self.since))
        params += [("_typeFilter", f) for f in self.type_filters]
        return params

    def parameters(self) -> Resource:
        """The kick-off as a Parameters resource (POST), for a list of patients."""
        values: list[dict[str, Any]] = [
            {"name": name, "valueString": value} for name, value in self.params()
        ]
        values += [
            {"name": "patient", "valueReference": {"reference": _patient_ref(p)}}
            for p in self.patients
        ]
        return {"resourceType": "Parameters", "parameter": values}

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class ExportFile:
    """One file of the manifest and where it went in the folder."""

    kind: str  # output | deleted | error
    type: str
    url: str
    path: str  # relative to the folder
    done: bool = False
    lines: int = 0
    bytes: int = 0


@dataclass
class ExportResult:
    folder: Path
    transaction_time: str | None
    files: list[ExportFile]
    errors: list[str] = field(default_factory=list)  # the error files' issues, one line each
    resumed: bool = False
    status_deleted: bool = False

    def count(self, kind: str) -> int:
        return sum(f.lines for f in self.files if f.kind == kind)

    def by_type(self, kind: str = "output") -> dict[str, int]:
        totals: dict[str, int] = {}
        for f in self.files:
            if f.kind == kind:
                totals[f.type] = totals.get(f.type, 0) + f.lines
        return totals


Report = Callable[[str], None]


def _quiet(message: str) -> None:
    logger.info("%s", message)


async def export(
    fhir: FhirClient,
    request: ExportRequest,
    folder: Path,
    *,
    report: Report = _quiet,
    max_poll_interval: float | None = None,
    check_capability: bool = True,
) -> ExportResult:
    """Run (or resume) the export ``request`` into ``folder``; see the module docstring.

    ``report`` hears one line per event (kick-off, each poll's X-Progress, each file).
    ``max_poll_interval`` caps the wait between polls, whatever ``Retry-After`` says
    (default :data:`DEFAULT_MAX_POLL_INTERVAL`).
    """
    max_poll_interval = max_poll_interval or DEFAULT_MAX_POLL_INTERVAL
    folder.mkdir(parents=True, exist_ok=True)
    state = read_state(folder)
    resumed = state is not None
    if state is not None:
        if state.get("server") != fhir.base_url or state.get("request") != request.to_dict():
            raise FolderInUse(
                f"{folder} holds another export (another server or request); "
                "use an empty folder, or the same --server and options to resume it"
            )
    else:
        state = {"format": _STATE_FORMAT, "server": fhir.base_url,
                 "request": request.to_dict(), "status_url": None, "manifest": None,
                 "files": [], "status_deleted": False}
    if state["manifest"] is None:
        if state["status_url"] is None:
            if check_capability:
                await _check_capability(fhir, request)
            state["status_url"] = await _kick_off(fhir, request)
            state["kicked_off"] = datetime.now(UTC).isoformat(timespec="seconds")
            _save(folder, state)
            report(f"export accepted ({request.level} level); polling for its files")
        else:
            report("resuming the export recorded in the folder; polling its status")
        manifest = await _poll(fhir, state["status_url"], report, max_poll_interval)
        if manifest is None:  # the job the folder recorded is gone: start it again, once
            report("the server no longer knows the recorded export; starting it again")
            state["status_url"] = await _kick_off(fhir, request)
            _save(folder, state)
            manifest = await _poll(fhir, state["status_url"], report, max_poll_interval)
            if manifest is None:
                raise InvalidResponse("the export's status URL vanished while being polled")
        state["manifest"] = manifest
        state["files"] = [asdict(f) for f in _plan_files(manifest)]
        _save(folder, state)
    elif resumed:
        report("resuming the downloads recorded in the folder")
    manifest = state["manifest"]
    with_token = bool(manifest.get("requiresAccessToken", False))
    files = [ExportFile(**f) for f in state["files"]]
    for position, item in enumerate(files):
        target = folder / item.path
        if item.done and target.is_file() and target.stat().st_size == item.bytes:
            continue
        url = fhir.same_server(item.url, "manifest file URL") if with_token else item.url
        item.lines, item.bytes = await _download(fhir, url, target, with_token)
        item.done = True
        state["files"][position] = asdict(item)
        _save(folder, state)
        report(f"{item.path}: {item.lines} lines, {item.bytes} bytes")
    result = ExportResult(folder, manifest.get("transactionTime"), files, resumed=resumed)
    for item in files:
        if item.kind == "error":
            result.errors += _error_lines(folder / item.path)
    if not state["status_deleted"]:
        state["status_deleted"] = await _delete_status(fhir, state["status_url"])
        _save(folder, state)
    result.status_deleted = state["status_deleted"]
    return result


def read_state(folder: Path) -> dict[str, Any] | None:
    """The folder's export state, or None when there is none (a new export)."""
    path = folder / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise FolderInUse(f"{path} cannot be read ({exc}); remove it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
        raise FolderInUse(f"{path} is not an export state this version writes")
    return state


def _save(folder: Path, state: Mapping[str, Any]) -> None:
    """Atomically: a crash leaves the previous state or the new one, never half of one."""
    path = folder / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# --- kick-off ------------------------------------------------------------------------------


async def _check_capability(fhir: FhirClient, request: ExportRequest) -> None:
    """Unsupported when the CapabilityStatement names no ``export`` operation at the level."""
    capability = await fhir.capabilities()
    for rest in capability.get("rest") or []:
        if not isinstance(rest, dict):
            continue
        if request.level == "system" and _offers(rest.get("operation")):
            return
        for resource in rest.get("resource") or []:
            if (isinstance(resource, dict) and request.level != "system"
                    and resource.get("type") == request.level.capitalize()
                    and _offers(resource.get("operation"))):
                return
    where = "system" if request.level == "system" else request.level.capitalize()
    raise Unsupported(
        f"{fhir.base_url} does not offer Bulk Data $export at the {where} level "
        "(not in its CapabilityStatement)"
    )


def _offers(operations: Any) -> bool:
    for op in operations if isinstance(operations, list) else []:
        if not isinstance(op, dict):
            continue
        definition = str(op.get("definition") or "")
        if op.get("name") in _OPERATION_NAMES or "bulkdata/OperationDefinition" in definition:
            return True
    return False


async def _kick_off(fhir: FhirClient, request: ExportRequest) -> str:
    # no-cache: some servers (HAPI) otherwise hand back an earlier identical export's files.
    headers = {"Prefer": "respond-async", "Accept": FHIR_JSON, "Cache-Control": "no-cache"}
    try:
        if request.patients:
            response = await fhir.request("POST", request.path, body=request.parameters(),
                                          headers=headers, idempotent=False)
        else:
            response = await fhir.request("GET", request.path, params=request.params(),
                                          headers=headers)
    except (NotFound, BadRequest, ServerError) as err:
        if err.status not in _UNSUPPORTED or (request.group and isinstance(err, NotFound)
                                              and err.outcome is not None):
            raise
        raise Unsupported(
            f"{fhir.base_url} does not support Bulk Data $export ({request.path} answered "
            f"{err.status})", status=err.status, outcome=err.outcome, method=err.method,
            path=err.path,
        ) from err
    location = response.headers.get("Content-Location")
    if response.status_code != 202 or not location:
        raise InvalidResponse(
            f"$export kick-off answered {response.status_code} without a status URL "
            "(expected 202 Accepted with Content-Location)"
        )
    return fhir.same_server(location, "export status URL")


# --- polling -------------------------------------------------------------------------------


async def _poll(
    fhir: FhirClient, status_url: str, report: Report, max_interval: float
) -> Resource | None:
    """The manifest once the export is complete; None when the server no longer knows it.

    202: still running (``X-Progress`` is reported); wait ``Retry-After`` (seconds or an
    HTTP date), else back off 1, 2, 4 … s, at most ``max_interval``. 429: polled too often,
    wait as asked. 5xx and network failures are retried by the client; an error status with
    an OperationOutcome is the export's failure, raised.
    """
    backoff = 1.0
    while True:
        try:
            response = await fhir.request("GET", status_url, accept_statuses=frozenset({202, 429}))
        except (NotFound, Gone):
            return None
        if response.status_code == 200:
            return _manifest(response)
        hint = _retry.parse_retry_after(response.headers.get("Retry-After"))
        if response.status_code == 202:
            progress = response.headers.get("X-Progress")
            report(f"in progress: {progress}" if progress else "in progress")
        else:
            report("the server asks to poll less often (429)")
        wait = min(max_interval, hint if hint is not None else backoff)
        backoff = min(backoff * 2, max_interval)
        await _retry.sleep(wait)


def _manifest(response: httpx.Response) -> Resource:
    try:
        manifest = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
        raise InvalidResponse("the export's completion response is not a Bulk Data manifest")
    for kind in ("output", "deleted", "error"):
        for item in manifest.get(kind) or []:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                raise InvalidResponse(f"the export manifest's {kind} has an entry without url")
    return manifest


def _plan_files(manifest: Mapping[str, Any]) -> list[ExportFile]:
    """Where each manifest file goes: ``Type.ndjson``, ``Type.2.ndjson`` …, under
    ``deleted/`` and ``error/`` for those; a type that is not a FHIR type name becomes
    ``unknown`` (a hostile manifest cannot write outside the folder)."""
    files: list[ExportFile] = []
    seen: dict[str, int] = {}
    for kind in ("output", "deleted", "error"):
        prefix = "" if kind == "output" else f"{kind}/"
        for item in manifest.get(kind) or []:
            kind_type = str(item.get("type") or "")
            name = kind_type if _TYPE_NAME.fullmatch(kind_type) else "unknown"
            stem = prefix + name
            seen[stem] = seen.get(stem, 0) + 1
            suffix = "" if seen[stem] == 1 else f".{seen[stem]}"
            files.append(ExportFile(kind, kind_type, item["url"], f"{stem}{suffix}.ndjson"))
    return files


# --- download -----------------------------------------------------------------------------


async def _download(fhir: FhirClient, url: str, target: Path, with_token: bool) -> tuple[int, int]:
    """Stream ``url`` to ``target`` (via ``target.part``): (lines, bytes).

    A connection lost mid-file is retried from the start, as the client retries requests
    (its policy and ``Retry-After``); the ``.part`` file is rewritten each time.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    policy = fhir.retry_policy
    attempt = 0
    while True:
        response = await fhir.request(
            "GET", url, headers={"Accept": NDJSON}, stream=True, token=with_token
        )
        lines = size = 0
        last = b"\n"
        try:
            with part.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    out.write(chunk)
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    last = chunk[-1:] or last
                out.flush()
                os.fsync(out.fileno())
        except httpx.TransportError as exc:
            err: FhirError = error_from_transport(exc, response.request)
            if attempt >= policy.max_retries:
                raise err from exc
            logger.warning("bulk file download interrupted (%s); retry %d/%d",
                           type(exc).__name__, attempt + 1, policy.max_retries)
            await _retry.sleep(policy.delay(attempt))
            attempt += 1
            continue
        finally:
            await response.aclose()
        if last != b"\n":
            lines += 1  # the last line has no newline
        os.replace(part, target)
        return lines, size


def _error_lines(path: Path) -> list[str]:
    """One line per OperationOutcome in an error file (read a line at a time)."""
    found: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                outcome = json.loads(raw)
            except ValueError:
                found.append(f"{path.name}:{number}: not JSON")
                continue
            text = outcome_message(outcome) if isinstance(outcome, dict) else ""
            found.append(f"{path.name}:{number}: {text or 'an OperationOutcome without issues'}")
    return found


async def _delete_status(fhir: FhirClient, status_url: str | None) -> bool:
    """DELETE the status URL once the files are here, so the server can drop them (the IG:
    "the client MAY send a DELETE"); a server that refuses is only reported."""
    if not status_url:
        return False
    try:
        await fhir.request("DELETE", status_url)
    except (NotFound, Gone):
        return True
    except (RetryableError, FhirError) as err:
        logger.warning("could not delete the export's status URL: %s", type(err).__name__)
        return False
    return True


def _patient_ref(patient: str) -> str:
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def parse_since(value: str) -> str:
    """``_since`` as the IG wants it, an instant: a date gets midnight UTC; a date-time
    without a zone is refused (ValueError) rather than guessed."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return f"{text}T00:00:00Z"
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {value!r} is not a date or an ISO 8601 instant") from None
    if when.tzinfo is None:
        raise ValueError(f"--since {value!r} has no time zone (add Z or +hh:mm)")
    return text


def summary_lines(result: ExportResult) -> Sequence[str]:
    """The export in a few lines for a person (counts only, no resource content)."""
    lines = [f"export folder: {result.folder}"]
    if result.transaction_time:
        lines.append(f"transaction time: {result.transaction_time}")
    output = result.by_type("output")
    lines.append("resources: " + (", ".join(f"{t} {n}" for t, n in sorted(output.items()))
                                  or "none"))
    deleted = result.count("deleted")
    if deleted:
        lines.append(f"deleted: {deleted} Bundle(s) in deleted/")
    if result.errors:
        lines.append(f"server errors: {len(result.errors)} in error/")
    return lines
