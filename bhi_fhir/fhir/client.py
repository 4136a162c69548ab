"""An async FHIR R4 REST client on httpx: raw dicts on the wire, retries, paging, writes.

Why our own client: the sync needs timeouts, bounded retries that respect the server,
a per-server concurrency cap, SMART backend services and conditional/versioned writes —
fhirclient is synchronous without timeouts and fhir-py is on aiohttp, not httpx.

What each call sends (``base`` is the server base URL)::

    read("Patient", "1")                     GET    base/Patient/1
    vread("Patient", "1", "3")               GET    base/Patient/1/_history/3
    search("Patient", {"_tag": "s|c"})       GET    base/Patient?_tag=s|c   (+ every `next` page)
    create(r, if_none_exist="identifier=s|v")  POST base/{type}  If-None-Exist: identifier=s|v
    update(r, if_match="3")                  PUT    base/{type}/{id}  If-Match: W/"3"
    delete("Patient", "1")                   DELETE base/Patient/1
    transaction(bundle) / batch(bundle)      POST   base
    validate(r, profile=url)                 POST   base/{type}/$validate?profile=url
    capabilities()                           GET    base/metadata
    smart_configuration()                    GET    base/.well-known/smart-configuration

Reads are tolerant: bodies stay ``dict``; only the shape we rely on (a JSON object, a
Bundle when paging) is checked. Logs carry method, resource type, status and duration —
never bodies or query values, which can hold PHI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from bhi_fhir.fhir import _retry
from bhi_fhir.fhir.auth import NoAuth, same_origin
from bhi_fhir.fhir.errors import (
    Conflict,
    InvalidResponse,
    PreconditionFailed,
    RetryableError,
    error_from_response,
    error_from_transport,
)
from bhi_fhir.fhirjson import (
    entry_answer,
    etag,  # re-exported: bhi_fhir.fhir.etag
)

logger = logging.getLogger(__name__)
# A library never prints: without this, warnings reach stderr through logging.lastResort.
logger.addHandler(logging.NullHandler())

FHIR_JSON = "application/fhir+json"
Resource = dict[str, Any]
Params = Mapping[str, str | int | Sequence[str | int]] | Sequence[tuple[str, str | int]]

# Statuses after which the server did not act on the request: safe to repeat any method.
_NOT_PROCESSED = frozenset({429, 503})


class FhirClient:
    """One FHIR server: ``async with FhirClient(url) as fhir: await fhir.read(...)``."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30,
        max_concurrency: int = 8,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_policy = _retry.RetryPolicy(max_retries, backoff_base, backoff_max)
        self.max_concurrency = max_concurrency  # requests in flight at once
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._request_count = 0
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            auth=auth or NoAuth(),
            timeout=timeout,
            transport=transport,
            headers={"Accept": FHIR_JSON, "User-Agent": "bhi-fhir"},
            event_hooks={"request": [self._count_request]},
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, including retries, token and discovery requests."""
        return self._request_count

    async def _count_request(self, request: httpx.Request) -> None:
        self._request_count += 1

    # --- reads --------------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> Resource:
        """The current version; NotFound (404) or Gone (410, deleted) otherwise."""
        return _json(await self.request("GET", f"{resource_type}/{resource_id}"))

    async def vread(self, resource_type: str, resource_id: str, version_id: str) -> Resource:
        """One historic version."""
        path = f"{resource_type}/{resource_id}/_history/{version_id}"
        return _json(await self.request("GET", path))

    async def search_bundle(
        self, resource_type: str, params: Params | None = None
    ) -> AsyncIterator[Resource]:
        """Every searchset Bundle page, following ``next`` links; includes stay in the pages.

        Use this when ``_include``/``_revinclude`` results matter; ``search`` yields matches only.
        """
        url: str | None = resource_type
        query: Params | None = params
        seen: set[str] = set()
        while url is not None:
            bundle = _json(await self.request("GET", url, params=query))
            if bundle.get("resourceType") != "Bundle":
                raise InvalidResponse(f"search {resource_type} returned no Bundle")
            yield bundle
            url, query = self._next_link(bundle), None
            if url is not None:
                if url in seen:
                    raise InvalidResponse(f"search {resource_type}: paging loops")
                seen.add(url)

    async def search(
        self, resource_type: str, params: Params | None = None
    ) -> AsyncIterator[Resource]:
        """Matching resources across all pages (``search.mode`` ≠ include/outcome)."""
        async for bundle in self.search_bundle(resource_type, params):
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                mode = (entry.get("search") or {}).get("mode", "match")
                if isinstance(resource, dict) and mode == "match":
                    yield resource

    async def capabilities(self) -> Resource:
        """The server's CapabilityStatement (``/metadata``)."""
        body = _json(await self.request("GET", "metadata"))
        if body.get("resourceType") != "CapabilityStatement":
            raise InvalidResponse("/metadata is not a CapabilityStatement")
        return body

    async def smart_configuration(self) -> Resource:
        """``.well-known/smart-configuration``; NotFound when the server has no SMART."""
        response = await self.request(
            "GET", ".well-known/smart-configuration", headers={"Accept": "application/json"}
        )
        return _json(response)

    # --- writes -------------------------------------------------------------------------------

    async def create(
        self, resource: Resource, if_none_exist: str | Params | None = None
    ) -> Resource:
        """Create; with ``if_none_exist`` (a search) the existing match is returned instead.

        Only a conditional create is retried after an ambiguous failure: a plain POST that
        timed out may have been stored, and repeating it would duplicate the resource.
        """
        resource_type = _resource_type(resource)
        headers = {"Prefer": "return=representation"}
        if if_none_exist is not None:
            headers["If-None-Exist"] = _query_string(if_none_exist)
        response = await self.request(
            "POST",
            resource_type,
            body=resource,
            headers=headers,
            idempotent=if_none_exist is not None,
        )
        return await self._written(response)

    async def update(self, resource: Resource, if_match: str | int | None = None) -> Resource:
        """Update by id; with ``if_match`` (a versionId or ETag) only if still that version.

        A stale version raises PreconditionFailed. HAPI answers a version clash with
        409 Conflict; with If-Match that means the same thing, so it is raised as 412 too.
        """
        resource_type = _resource_type(resource)
        resource_id = resource.get("id")
        if not resource_id:
            raise ValueError("update needs a resource with an id")
        headers = {"Prefer": "return=representation"}
        if if_match is not None:
            headers["If-Match"] = etag(if_match)
        try:
            response = await self.request(
                "PUT", f"{resource_type}/{resource_id}", body=resource, headers=headers
            )
        except Conflict as err:
            if if_match is None:
                raise
            raise PreconditionFailed(
                err.message, status=err.status, outcome=err.outcome, method="PUT", path=err.path
            ) from err
        return await self._written(response)

    async def delete(self, resource_type: str, resource_id: str) -> Resource | None:
        """Delete; returns the server's OperationOutcome if it sent one."""
        response = await self.request("DELETE", f"{resource_type}/{resource_id}")
        return _json(response) if response.content else None

    async def transaction(self, bundle: Resource, *, idempotent: bool = True) -> Resource:
        """All-or-nothing Bundle; any failing entry fails the whole request (4xx).

        Retried like a read: our transaction Bundles use ifNoneExist/ifMatch on every entry
        (design decision 3), so repeating one cannot duplicate writes. ``idempotent=False``:
        a request the server may have processed (a timeout, a reset after sending, a 5xx other
        than 503) is not repeated but raised, for a caller that finds the outcome first.
        """
        return await self._post_bundle(bundle, "transaction", idempotent=idempotent)

    async def batch(self, bundle: Resource) -> Resource:
        """Independent entries; each response entry carries its own status."""
        return await self._post_bundle(bundle, "batch")

    async def validate(self, resource: Resource, profile: str | None = None) -> Resource:
        """``$validate``: the OperationOutcome, whether the resource passed or not.

        The resource is the body and ``profile`` a URL parameter, both allowed by the
        operation's definition. The ``Parameters`` form is avoided on purpose: HAPI 8
        reports a spurious ``inv-1`` error on the wrapper when the resource is invalid and
        turns a ``valueUri`` profile into "UriType[...]". Servers report an invalid resource
        as 200, 400, 412 or 422 with an OperationOutcome; all of those are an answer.
        """
        resource_type = _resource_type(resource)
        response = await self.request(
            "POST",
            f"{resource_type}/$validate",
            params={"profile": profile} if profile else None,
            body=resource,
            idempotent=True,
            accept_statuses=frozenset({400, 412, 422}),
        )
        body = _json(response)
        if body.get("resourceType") == "Parameters":  # some servers wrap it as "return"
            for parameter in body.get("parameter") or []:
                wrapped = parameter.get("resource")
                if parameter.get("name") == "return" and isinstance(wrapped, dict):
                    body = wrapped
        if body.get("resourceType") != "OperationOutcome":
            if response.is_error:
                raise error_from_response(response)
            raise InvalidResponse(f"$validate {resource_type} returned no OperationOutcome")
        return body

    # --- the one request path -----------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        body: Resource | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        accept_statuses: frozenset[int] = frozenset(),
        stream: bool = False,
        token: bool = True,
    ) -> httpx.Response:
        """Send with retries; return a 2xx (or an ``accept_statuses``) response, else raise.

        ``url`` is relative to the base URL or absolute (paging links). ``idempotent``
        defaults to True for every method except POST. ``stream``: the body is not read; the
        caller reads it (``aiter_bytes``) and closes the response. ``token=False`` sends the
        request without credentials, to any origin (a Bulk Data file whose manifest says
        ``requiresAccessToken: false``, e.g. a signed storage URL).
        """
        if idempotent is None:
            idempotent = method != "POST"
        all_headers = dict(headers or {})
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            all_headers["Content-Type"] = FHIR_JSON
        attempt = 0
        while True:
            try:
                return await self._send_once(
                    method, url, params, content, all_headers, accept_statuses,
                    stream=stream, token=token,
                )
            except RetryableError as err:
                repeatable = idempotent or not err.request_sent or err.status in _NOT_PROCESSED
                if attempt >= self.retry_policy.max_retries or not repeatable:
                    raise
                delay = self.retry_policy.delay(attempt, err.retry_after)
                logger.warning(
                    "fhir %s %s → %s; retry %d/%d in %.2fs",
                    method,
                    self._label(httpx.URL(err.path or "")),  # the type only: paths carry ids
                    err.status or type(err).__name__,
                    attempt + 1,
                    self.retry_policy.max_retries,
                    delay,
                )
                await _retry.sleep(delay)
                attempt += 1

    async def _send_once(
        self,
        method: str,
        url: str,
        params: Params | None,
        content: bytes | None,
        headers: Mapping[str, str],
        accept_statuses: frozenset[int],
        *,
        stream: bool = False,
        token: bool = True,
    ) -> httpx.Response:
        async with self._semaphore:
            request = self._http.build_request(
                method, url, params=_query(params), content=content, headers=headers
            )
            if token and not same_origin(request.url, self.base_url):
                # The token is for this server only (SMART backend-services.md): a URL the
                # server handed us that points elsewhere is refused before auth runs.
                raise InvalidResponse(
                    f"{method} refused: {_origin(request.url)} is not the server's own "
                    f"origin {_origin(httpx.URL(self.base_url))}; the token is not sent there"
                )
            label = self._label(request.url)
            started = time.monotonic()
            try:
                response = await self._http.send(
                    request, stream=stream, auth=httpx.USE_CLIENT_DEFAULT if token else NoAuth()
                )
            except httpx.TransportError as exc:
                logger.info("fhir %s %s failed: %s", method, label, type(exc).__name__)
                raise error_from_transport(exc, request) from exc
            except httpx.RequestError as exc:  # decoding, redirects: not retryable
                raise InvalidResponse(f"{method} {request.url.path}: {type(exc).__name__}") from exc
            elapsed_ms = (time.monotonic() - started) * 1000
        logger.debug("fhir %s %s → %d in %.0f ms", method, label, response.status_code, elapsed_ms)
        if response.is_success or response.status_code in accept_statuses:
            return response
        if stream:
            await response.aread()  # the error's OperationOutcome; closes the stream
        retry_after = _retry.parse_retry_after(response.headers.get("Retry-After"))
        raise error_from_response(response, retry_after=retry_after)

    # --- helpers ------------------------------------------------------------------------------

    async def _post_bundle(self, bundle: Resource, kind: str, *, idempotent: bool = True
                           ) -> Resource:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != kind:
            raise ValueError(f"expected a Bundle of type {kind!r}")
        response = await self.request("POST", self.base_url, body=bundle, idempotent=idempotent)
        result = _json(response)
        if result.get("resourceType") != "Bundle":
            raise InvalidResponse(f"{kind} response is not a Bundle")
        if kind == "transaction":
            _check_transaction_response(bundle, result)
        return result

    async def _written(self, response: httpx.Response) -> Resource:
        """The stored resource from a write response, reading Location if the body is empty."""
        if response.content:
            body = _json(response)
            if body.get("resourceType") not in (None, "OperationOutcome"):
                return body
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if not location:
            raise InvalidResponse("write returned neither the resource nor a Location")
        return _json(await self.request("GET", self._same_server(location, "Location header")))

    def _next_link(self, bundle: Resource) -> str | None:
        """The absolute ``next`` URL, kept on our server so the token never leaves it."""
        for link in bundle.get("link") or []:
            if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
                return self._same_server(str(link["url"]), "paging link")
        return None

    def same_server(self, url: str, what: str) -> str:
        """``url`` made absolute and kept on this server's origin (the rule ``next`` links and
        Location headers follow), or InvalidResponse naming ``what``: the token is only ever
        sent to the server that issued it."""
        return self._same_server(url, what)

    def _same_server(self, url: str, what: str) -> str:
        base = urllib.parse.urlsplit(self.base_url)
        target = urllib.parse.urlsplit(urllib.parse.urljoin(self.base_url + "/", url))
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return target.geturl()
        # Servers behind proxies often advertise their internal host; keep our own origin
        # when the path is under our base, refuse anything else.
        if target.path.startswith(base.path):
            return target._replace(scheme=base.scheme, netloc=base.netloc).geturl()
        raise InvalidResponse(
            f"{what} points to another server ({_origin(httpx.URL(target.geturl()))}, not "
            f"{_origin(httpx.URL(self.base_url))}): not followed, the token is not sent there"
        )

    def _label(self, url: httpx.URL) -> str:
        """Resource type or operation for logs: the first path segment after the base."""
        base_path = urllib.parse.urlsplit(self.base_url).path
        rest = url.path[len(base_path) :] if url.path.startswith(base_path) else url.path
        return rest.strip("/").split("/", 1)[0] or "(base)"


def _check_transaction_response(request: Resource, response: Resource) -> None:
    """A transaction's answer must account for every entry, in order (R4 http.html#transaction):
    one response entry per request entry, each a 2xx, a Location (when given) of the type
    written. Anything else leaves the outcome of our writes unknown — raised, never trusted.
    """
    sent = request.get("entry") or []
    got = response.get("entry") or []
    if not isinstance(got, list) or len(got) != len(sent):
        raise InvalidResponse(
            f"transaction response has {len(got) if isinstance(got, list) else 0} entries "
            f"for {len(sent)} sent"
        )
    for position, (ours, theirs) in enumerate(zip(sent, got, strict=True)):
        answer = entry_answer(theirs)
        if not answer.ok:
            raise InvalidResponse(
                f"transaction response entry {position}: status {answer.status or 'missing'}"
            )
        location = answer.location
        resource = ours.get("resource") if isinstance(ours, dict) else None
        kind = str(resource.get("resourceType") or "") if isinstance(resource, dict) else ""
        if location and kind and not _location_is(location, kind):
            raise InvalidResponse(
                f"transaction response entry {position}: a {kind} written, another type located"
            )


def _location_is(location: str, kind: str) -> bool:
    """``Task/1/_history/1`` or ``http://host/fhir/Task/1/_history/1`` names a ``kind``."""
    parts = urllib.parse.urlsplit(location).path.strip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return len(parts) >= 2 and parts[-2] == kind


def _origin(url: httpx.URL) -> str:
    """``scheme://host[:port]`` — never the path or query, which can hold PHI."""
    return f"{url.scheme}://{url.netloc.decode()}"


def _resource_type(resource: Mapping[str, Any]) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise ValueError("resource has no resourceType")
    return resource_type


def _query_string(query: str | Params) -> str:
    if isinstance(query, str):
        return query.lstrip("?")
    return str(_query(query))


def _query(params: Params | None) -> httpx.QueryParams | None:
    """Search parameters as httpx wants them; repeated names (``_include``) stay repeated."""
    if params is None:
        return None
    if isinstance(params, Mapping):
        return httpx.QueryParams(params)
    return httpx.QueryParams([(name, value) for name, value in params])


def _json(response: httpx.Response) -> Resource:
    """The body as a JSON object, or InvalidResponse (the server spoke something else)."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResponse(
            f"{response.request.method} {response.request.url.path}: body is not JSON",
            status=response.status_code,
            method=response.request.method,
            path=response.request.url.path,
        ) from exc
    if not isinstance(body, dict):
        raise InvalidResponse(
            f"{response.request.method} {response.request.url.path}: body is not a JSON object",
            status=response.status_code,
        )
    return body


__all__ = ["FHIR_JSON", "FhirClient", "Params", "Resource", "etag"]
