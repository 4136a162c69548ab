"""Register a rest-hook Subscription once: find ours by endpoint, else create it.

R4 Subscription has no business identifier; ours is the one with the same
``channel.endpoint`` (search ``url``), criteria and payload that is not ``off``/``error``.
Searching first makes a repeated ``bhi-fhir subscribe`` a no-op; two at the very same moment
could both create one (harmless: a notification runs an idempotent sync).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from bhi_fhir.fhir import FhirClient
from bhi_fhir.fhir.errors import RequestTimeout, TransportError

__all__ = ["PAYLOAD", "SECRET_HEADER", "ensure_subscription", "subscription_resource"]

PAYLOAD = "application/fhir+json"
SECRET_HEADER = "X-BHI-Notify-Secret"  # noqa: S105  (a header name)


def subscription_resource(
    endpoint: str, criteria: str, secret: str | None, tags: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint, "payload": PAYLOAD}
    if secret:
        channel["header"] = [f"{SECRET_HEADER}: {secret}"]
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "bhi-fhir: run the BHI workflow when a screening arrives",
        "criteria": criteria,
        "channel": channel,
    }
    if tags:
        resource["meta"] = {"tag": [{"system": s, "code": c} for s, c in tags]}
    return resource


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    channel, want = found.get("channel") or {}, wanted["channel"]
    return (
        found.get("criteria") == wanted["criteria"]
        and channel.get("type") == want["type"]
        and channel.get("endpoint") == want["endpoint"]
        and channel.get("payload") == want["payload"]
        and sorted(channel.get("header") or []) == sorted(want.get("header") or [])
        and found.get("status") in ("requested", "active")
    )


async def ensure_subscription(
    server: str,
    endpoint: str,
    *,
    criteria: str,
    secret: str | None = None,
    auth: httpx.Auth | None = None,
    tags: Sequence[tuple[str, str]] = (),
    transport: httpx.AsyncBaseTransport | None = None,
    timeout: float = 30,
) -> tuple[str, bool]:
    """The Subscription's id, and whether it was created now."""
    wanted = subscription_resource(endpoint, criteria, secret, tags)
    async with FhirClient(server, auth=auth, transport=transport, timeout=timeout) as client:

        async def ours() -> str | None:
            async for found in client.search("Subscription", {"url": endpoint, "_count": 50}):
                if _same(found, wanted):
                    return str(found["id"])
            return None

        existing = await ours()
        if existing is not None:
            return existing, False
        try:
            created = await client.create(wanted)
        except (RequestTimeout, TransportError):
            # The create's outcome is unknown (it is not repeated: that could make a second
            # one): the server may have stored it, so look for it once more before failing.
            stored = await ours()
            if stored is None:
                raise
            return stored, True
        return str(created["id"]), True
