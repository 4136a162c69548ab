"""The synthetic clinic (examples/generate_clinic.py) made unique per test and seeded on a server.

Every id gets a per-case prefix (so runs on a shared server never collide), every resource the
run tag (so the integration tier's cleanup deletes it), and the clinic is written with
client-assigned ids as PUTs in transaction Bundles.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from bhi_fhir.paths import examples_dir
from tests.clinic_generator import clinic_generator

Resource = dict[str, Any]
_TYPES = ("Patient", "QuestionnaireResponse", "CarePlan", "Consent", "Encounter", "Task")
# References and identifier values ("engage:QuestionnaireResponse/qr-1/_history/1") alike.
_REF = re.compile(r"\b(" + "|".join(_TYPES) + r")/([A-Za-z0-9\-]+)")


def clinic(patients: int, prefix: str, tag: tuple[str, str] | None = None) -> list[Resource]:
    """The clinic's resources, ids prefixed with ``prefix``, patients first."""
    generated = clinic_generator().generate(patients)
    out: list[Resource] = []
    for kind in _TYPES:
        out += _prefixed(generated.by_type.get(kind, []), prefix, tag)
    return out


def _prefixed(
    resources: list[Resource], prefix: str, tag: tuple[str, str] | None
) -> list[Resource]:
    out: list[Resource] = []
    for resource in resources:
        text = _REF.sub(lambda m: f"{m[1]}/{prefix}{m[2]}", json.dumps(resource))
        copy = json.loads(text)
        copy["id"] = f"{prefix}{copy['id']}"
        copy.get("meta", {}).pop("versionId", None)
        if tag is not None:
            copy.setdefault("meta", {}).setdefault("tag", []).append(
                {"system": tag[0], "code": tag[1]}
            )
        out.append(copy)
    return out


def chunks(resources: list[Resource], size: int = 400) -> Iterator[list[Resource]]:
    for i in range(0, len(resources), size):
        yield resources[i : i + size]


def put_bundle(resources: list[Resource]) -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


def seed(base: str, resources: list[Resource]) -> None:
    with httpx.Client(timeout=300, headers={"Content-Type": "application/fhir+json"}) as http:
        for part in chunks(resources):
            for attempt in range(5):  # a concurrent PUT of a shared team stub answers 409
                response = http.post(base, content=json.dumps(put_bundle(part)))
                if response.status_code != 409 or attempt == 4:
                    break
                time.sleep(0.5)
            response.raise_for_status()


def count(resources: list[Resource], kind: str) -> int:
    return sum(1 for r in resources if r["resourceType"] == kind)


def team(tag: tuple[str, str] | None = None) -> list[Resource]:
    """The practice plan's team and referral directory as stub resources (the EHR has them)."""
    from bhi_fhir.practice_plan import load_practice_plan

    plan = load_practice_plan(examples_dir() / "practice-plan.toml")
    refs = {m.reference for m in plan.team.care_managers}
    refs |= {plan.team.billing_practitioner.reference, plan.team.psychiatric_consultant.reference,
             plan.team.clinician_on_duty.reference}
    refs |= {t.performer for t in plan.crisis.directory.values() if t.performer}
    out = []
    for ref in sorted(refs):
        kind, ident = ref.split("/", 1)
        resource: Resource = {"resourceType": kind, "id": ident}
        if kind == "Organization":
            resource["name"] = ident
        if tag is not None:
            resource["meta"] = {"tag": [{"system": tag[0], "code": tag[1]}]}
        out.append(resource)
    return out


def delete_tagged(base: str, tag: str, types: Iterable[str], chunk: int = 100) -> int:
    """Delete every resource of ``types`` carrying ``tag`` (``system|code``); returns the count.

    HAPI's conditional ``DELETE Type?_tag=…`` deletes all matches in one database
    transaction, whose cost grows with the square of the matches (minutes for a few thousand
    resources); batches of plain ``DELETE Type/id`` entries stay linear.
    """
    deleted = 0
    with httpx.Client(timeout=300, headers={"Cache-Control": "no-cache"}) as http:
        for kind in types:
            ids: list[str] = []
            url: str | None = f"{base}/{kind}"
            params: dict[str, str] | None = {"_tag": tag, "_count": "500", "_elements": "id"}
            while url:
                page = http.get(url, params=params).json()
                ids += [e["resource"]["id"] for e in page.get("entry", [])]
                url = next(
                    (lk["url"] for lk in page.get("link", []) if lk["relation"] == "next"), None
                )
                params = None
            for i in range(0, len(ids), chunk):
                bundle = {
                    "resourceType": "Bundle",
                    "type": "batch",
                    "entry": [
                        {"request": {"method": "DELETE", "url": f"{kind}/{rid}"}}
                        for rid in ids[i : i + chunk]
                    ],
                }
                http.post(base, json=bundle).raise_for_status()
            deleted += len(ids)
    return deleted
