"""Drive bhi-fhir's CDS Hooks service with a CDS Hooks client that is not ours: HealthChain's
``SandboxClient`` (PyPI ``healthchain``, its sandbox "simulated EHR"), run by
tests/smart_app/test_cds_thirdparty.py in its own process (``PYTHONPATH`` = the folder tools/test
installs it in: its pins conflict with the app's, so it is kept apart from the venv).

argv[1]: JSON ``{"app", "issuer", "kid", "key_pem", "patient_id", "prefetch"}``. Prints JSON:
the discovery document as HealthChain's ``CDSServiceInformation`` parsed it, the request its
``CdsRequestConstructor`` built, the responses its ``SandboxClient`` received (and whether its
``CDSResponse`` model accepted each), and the JSON schemas of those three models.

HealthChain's client sends no ``Authorization``; an EHR does (CDS Hooks "Trusting CDS
Clients"), so its ``httpx.Client`` gets an event hook adding the EHR's signed JWT. The rest is
HealthChain's own code.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import httpx
import jwt
from healthchain.models import CDSRequest, CDSResponse
from healthchain.models.responses.cdsdiscovery import CDSServiceInformation
from healthchain.sandbox import SandboxClient, sandboxclient
from healthchain.sandbox.requestconstructors import CdsRequestConstructor
from healthchain.sandbox.workflows import Workflow


def main() -> None:
    args: dict[str, Any] = json.loads(sys.argv[1])

    def sign(request: httpx.Request) -> None:
        now = int(time.time())
        audience = str(request.url)
        claims = {"iss": args["issuer"], "sub": "healthchain-sandbox", "aud": audience,
                  "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, args["key_pem"], algorithm="RS256",
                           headers={"kid": args["kid"]})
        request.headers["Authorization"] = f"Bearer {token}"

    class EhrClient(httpx.Client):  # HealthChain's client plus the EHR's JWT
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, event_hooks={"request": [sign]}, **kw)

    sandboxclient.httpx.Client = EhrClient  # type: ignore[misc]

    discovery = CDSServiceInformation(**httpx.get(f"{args['app']}/cds-services").json())
    service = next(s for s in discovery.services if s.hook == "patient-view")
    request = CdsRequestConstructor().construct_request(  # its decorator wants keywords
        args["prefetch"], workflow=Workflow.patient_view,
        context={"userId": "Practitioner/bhcm-okafor", "patientId": args["patient_id"]},
    )
    client = SandboxClient(url=f"{args['app']}/cds-services/{service.id}",
                           workflow="patient-view")
    client.requests.append(request)
    responses = client.send_requests()
    parsed = []
    for response in responses:
        try:
            CDSResponse(**response)
            parsed.append(None)
        except Exception as exc:  # its model's verdict, reported to the test
            parsed.append(str(exc))
    print(json.dumps({
        "discovery": discovery.model_dump(mode="json", exclude_none=True),
        "request": request.model_dump(mode="json", exclude_none=True),
        "responses": responses,
        "model_errors": parsed,
        "schemas": {"discovery": CDSServiceInformation.model_json_schema(),
                    "request": CDSRequest.model_json_schema(),
                    "response": CDSResponse.model_json_schema()},
    }))


if __name__ == "__main__":
    main()
