"""Benchmark: an EHR launch to the rendered patient view, over the real HAPI, side by side.

The EHR is the SMART fixture of the tests (tests/smart_app/auth_server.py: discovery, authorize
with PKCE, token, id_token, and a token-checking proxy in front of HAPI); the app is served by
uvicorn; a scripted browser (httpx, cookies kept) follows the launch's redirects. One seeded
patient (the browser test's: 5 screens, a BHI CarePlan, a Task, a referral) is read per view.

Two ways the patient view reads its record, same app, same server, same run:
  per-search   one read of the Patient and one search per resource type (the view before it
               was batched; today the fallback for a server that refuses batch)
  batch        one batch Bundle carrying the read and every search (``FhirSource``)

For each: requests to the EHR from ``GET /launch`` to the view's ``200`` (OAuth and FHIR
apart), the median launch-to-view time, and the median time of a second view of the same
patient (the view alone). ``--latency-ms`` adds that much to every EHR request, as a remote
EHR would (the issue names 100–300 ms).

    BHI_FHIR_BASE_URL=http://127.0.0.1:8096/fhir .venv/bin/python benchmarks/bench_patient_view.py \
        [--repeat 5] [--latency-ms 0]

Prints figures; asserts nothing. Seeded resources carry a run tag and are deleted after.

Measured 2026-11-30 on the local HAPI 8 (2 shared cores, load ~8), median of 5 launches::

    latency   read         EHR req/launch  FHIR req/launch  launch→view ms  view ms
    0 ms      per-search   12              10               1066           1090
              batch         3               1                585            360
    150 ms    per-search   12              10               2207           1635
              batch         3               1               1216            553

EHR requests per launch: authorize, token, then the FHIR reads. The SMART configuration is
discovered once per five minutes per app and the id_token's key set cached for an hour, so
both rows of a run share them. The app before these changes, same script: 13 EHR requests
and 10 FHIR requests per launch, 1460–1499 ms launch-to-view and 1180–1271 ms per view at
0 ms, 2555 ms and 2122 ms at 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bhi_fhir.registry.reader import PATIENT_SEARCHES, SEARCH_FILTERS  # noqa: E402
from smart_app.config import EhrRegistration, Settings  # noqa: E402
from smart_app.data import FhirSource  # noqa: E402
from smart_app.main import create_app  # noqa: E402
from tests.browser.test_ehr_launch import seed_patient  # noqa: E402
from tests.smart_app.auth_server import (  # noqa: E402
    AuthServerState,
    Client,
    ServerThread,
    create_auth_server,
    free_port,
)

FHIR_JSON = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}


async def _per_search(self: FhirSource, patient_id: str) -> list[dict[str, Any]]:
    """The view's read before the batch: the Patient read and one search per resource type,
    each a request of its own (sent concurrently)."""
    fhir = self._fhir

    async def search(resource_type: str, param: str) -> list[dict[str, Any]]:
        params = {param: f"Patient/{patient_id}", "_count": "200",
                  **SEARCH_FILTERS.get(resource_type, {})}
        return [r async for r in fhir.search(resource_type, params)]

    patient, *found = await asyncio.gather(
        fhir.read("Patient", patient_id), *(search(t, p) for t, p in PATIENT_SEARCHES)
    )
    return [patient, *(r for group in found for r in group)]


@contextmanager
def reading(mode: str) -> Iterator[None]:
    """The app's patient view reads per search (``per-search``) or in one batch (``batch``)."""
    original: Callable[..., Any] = FhirSource.patient_resources
    if mode == "per-search":
        FhirSource.patient_resources = _per_search  # type: ignore[method-assign]
    try:
        yield
    finally:
        FhirSource.patient_resources = original  # type: ignore[method-assign]


def launch_once(app_url: str, ehr: AuthServerState, patient_id: str) -> dict[str, Any]:
    launch = ehr.new_launch(patient=patient_id, fhirUser="Practitioner/bhcm-okafor")
    ehr.requests.clear()
    with httpx.Client(timeout=60, follow_redirects=True) as browser:
        started = time.perf_counter()
        page = browser.get(f"{app_url}/launch", params={"iss": ehr.fhir_base, "launch": launch})
        launch_s = time.perf_counter() - started
        assert page.status_code == 200 and "patient-name" in page.text, page.text[:400]
        launch_requests = list(ehr.requests)
        ehr.requests.clear()
        started = time.perf_counter()
        again = browser.get(f"{app_url}/patient/{patient_id}")
        view_s = time.perf_counter() - started
        assert again.status_code == 200
        view_requests = list(ehr.requests)
    fhir = [r for r in launch_requests if r[1].startswith("/fhir") and "well-known" not in r[1]]
    return {
        "launch_s": launch_s,
        "view_s": view_s,
        "launch_requests": len(launch_requests),
        "launch_fhir": len(fhir),
        "view_fhir": len(view_requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    hapi = os.environ.get("BHI_FHIR_BASE_URL", "http://127.0.0.1:8080/fhir").rstrip("/")

    state = AuthServerState(backend=hapi)
    with ServerThread(create_auth_server(state)) as auth:
        state.base = auth.url
        port = free_port()
        app_url = f"http://127.0.0.1:{port}"
        state.clients["bhi-app"] = Client("bhi-app", f"{app_url}/callback")
        settings = Settings(
            base_url=app_url,
            registrations=[EhrRegistration(iss=state.fhir_base, client_id="bhi-app")],
            cookie_secure=False,
            today="2026-11-26",
        )
        with ServerThread(create_app(settings), port=port), seed_patient(hapi) as patient_id:
            state.latency = args.latency_ms / 1000
            rows = {}
            for mode in ("per-search", "batch"):
                with reading(mode):
                    launch_once(app_url, state, patient_id)  # warm both sides
                    runs = [launch_once(app_url, state, patient_id) for _ in range(args.repeat)]
                rows[mode] = runs
    print(
        f"patient view over HAPI ({hapi}), EHR latency {args.latency_ms:.0f} ms/request, "
        f"median of {args.repeat} launches (run {uuid.uuid4().hex[:6]})"
    )
    header = ("", "EHR requests/launch", "FHIR requests/launch", "launch→view ms",
              "FHIR requests/view", "view ms")  # fmt: skip
    print(f"{header[0]:<12}" + "".join(f"{h:>22}" for h in header[1:]))
    for mode, runs in rows.items():
        cells = (
            runs[-1]["launch_requests"],
            runs[-1]["launch_fhir"],
            round(statistics.median(r["launch_s"] for r in runs) * 1000),
            runs[-1]["view_fhir"],
            round(statistics.median(r["view_s"] for r in runs) * 1000),
        )
        print(f"{mode:<12}" + "".join(f"{c:>22}" for c in cells))


if __name__ == "__main__":
    main()
