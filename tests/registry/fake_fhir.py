"""A FHIR server in memory for the registry's reads: batch Bundles of searches by patient
(``Patient?_id=…``, ``<Type>?<param>=Patient/a,Patient/b``) and the enrollment search, over
resources the test holds and may change between reads."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bhi_fhir.fhirjson import patient_of

Resource = dict[str, Any]
BASE = "http://fhir.test/fhir"


class FakeFhir:
    def __init__(self, resources: list[Resource]) -> None:
        self.resources = [copy.deepcopy(r) for r in resources]
        self.requests = 0

    @classmethod
    def from_ndjson_dir(cls, folder: Path) -> FakeFhir:
        items = [json.loads(line) for path in sorted(folder.glob("*.ndjson"))
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return cls(items)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def put(self, resource: Resource) -> None:
        key = (resource["resourceType"], resource["id"])
        self.resources = [r for r in self.resources if (r["resourceType"], r["id"]) != key]
        self.resources.append(copy.deepcopy(resource))

    def _search(self, url: str) -> Resource:
        parts = urlsplit(url)
        kind = parts.path.strip("/").rsplit("/", 1)[-1]
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        found = [r for r in self.resources if r["resourceType"] == kind]
        if "_id" in params:
            found = [r for r in found if r["id"] in params["_id"].split(",")]
        for name in ("subject", "patient"):
            if name in params:
                wanted = set(params[name].split(","))
                found = [r for r in found if patient_of(r) in wanted]
        if "status" in params:
            found = [r for r in found if r.get("status") == params["status"]]
        if "category" in params:
            code = params["category"].rsplit("|", 1)[-1]
            found = [r for r in found if code in json.dumps(r.get("category"))]
        if "code" in params:
            codes = {c.rsplit("|", 1)[-1] for c in params["code"].split(",")}
            found = [r for r in found
                     if codes & {c.get("code") for c in (r.get("code") or {}).get("coding", [])}]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(found),
                "entry": [{"resource": copy.deepcopy(r), "search": {"mode": "match"}}
                          for r in found]}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        path = request.url.path.removeprefix("/fhir").strip("/")
        if request.method == "POST" and path == "":
            bundle = json.loads(request.content)
            entries = [{"resource": self._search(e["request"]["url"]),
                        "response": {"status": "200 OK"}} for e in bundle["entry"]]
            return httpx.Response(200, json={"resourceType": "Bundle",
                                             "type": "batch-response", "entry": entries})
        return httpx.Response(200, json=self._search(str(request.url)))
