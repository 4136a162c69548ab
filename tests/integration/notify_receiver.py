"""The notification receiver and its Subscription, as the event-driven tests use them.

The receiver is the app ``bhi-fhir serve`` runs (``smart_app.main:create_app``), started with
uvicorn on a free 127.0.0.1 port. A test's Subscription matches only its own case's
QuestionnaireResponses (``subscribe --where _tag=…``), never the responses other tests write
while it is registered, and it is taken down before its receiver stops: deleted, then given
the time HAPI takes to drop it from the subscriptions it matches against (it re-reads them
every ``SUBSCRIPTION_REFRESH_S``). A Subscription still matched after its receiver is gone
leaves deliveries that HAPI retries for minutes, on the delivery threads later tests' own
notifications need.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx

from tests.smart_app.auth_server import free_port

# tools/hapi's SubscriptionSettings.setSubscriptionIntervalInMs, plus a margin.
SUBSCRIPTION_REFRESH_S = 6.0


@contextmanager
def running_receiver(env: Mapping[str, str]) -> Iterator[str]:
    """The app with ``env`` added to this process's environment; yields its base URL once
    ``/fhir-notify/status`` answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "smart_app.main:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/fhir-notify/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "the receiver exited at start-up"
            assert time.monotonic() < deadline, "the receiver did not answer within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def case_criteria(tag_system: str, case_id: str) -> list[str]:
    """``subscribe`` options narrowing the Subscription to one test case's responses."""
    return ["--where", f"_tag={tag_system}|{case_id}"]


def unsubscribe(fhir_base_url: str, subscription: str) -> None:
    """Delete ``subscription`` (``Subscription/<id>``, on the unprotected server) and wait until
    HAPI no longer matches against it, so nothing is left to deliver once the receiver stops."""
    httpx.delete(f"{fhir_base_url}/{subscription}", timeout=60)
    time.sleep(SUBSCRIPTION_REFRESH_S)
