"""Write bhi_fhir/measures/valuesets.json: the expansions of the value sets the measures read.

Source: the published eCQM value set expansions (VSAC) as cqframework/ecqm-content-qicore-2025
holds them (input/vocabulary/valueset/external/valueset-<OID>.json), the same repository whose
CQL (CMS159FHIRDepressionRemissionatTwelveMonths.cql, PCSDepressionScreenAndFollowUpFHIR.cql)
the measures follow. Run with the repository's git directory::

    python tools/measures/extract_valuesets.py /path/to/ecqm-content-qicore-2025.git
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = "cqframework/ecqm-content-qicore-2025"
# name as the CQL spells it → OID (the CQL's valueset declarations)
VALUE_SETS = {
    # CMS2 (PCSDepressionScreenAndFollowUpFHIR.cql)
    "Adolescent Depression Medications": "2.16.840.1.113883.3.526.3.1567",
    "Adult Depression Medications": "2.16.840.1.113883.3.526.3.1566",
    "Bipolar Disorder": "2.16.840.1.113883.3.67.1.101.1.128",
    "Encounter to Screen for Depression": "2.16.840.1.113883.3.600.1916",
    "Follow Up for Adolescent Depression": "2.16.840.1.113883.3.526.3.1569",
    "Follow Up for Adult Depression": "2.16.840.1.113883.3.526.3.1568",
    "Medical Reason": "2.16.840.1.113883.3.526.3.1007",
    "Physical Therapy Evaluation": "2.16.840.1.113883.3.526.3.1022",
    "Referral for Adolescent Depression": "2.16.840.1.113883.3.526.3.1570",
    "Referral for Adult Depression": "2.16.840.1.113883.3.526.3.1571",
    "Telephone Visits": "2.16.840.1.113883.3.464.1003.101.12.1080",
    # CMS159 (CMS159FHIRDepressionRemissionatTwelveMonths.cql)
    "Contact or Office Visit": "2.16.840.1.113762.1.4.1080.5",
    "Dysthymia": "2.16.840.1.113883.3.67.1.101.1.254",
    "Encounter Inpatient": "2.16.840.1.113883.3.666.5.307",
    "Hospice Care Ambulatory": "2.16.840.1.113883.3.526.3.1584",
    "Hospice Diagnosis": "2.16.840.1.113883.3.464.1003.1165",
    "Hospice Encounter": "2.16.840.1.113883.3.464.1003.1003",
    # The CQL's own declaration of this OID drops a ".1" (2.16.840.113883...); the file
    # carries the same spelling.
    "Major Depression Including Remission": "2.16.840.113883.3.67.1.101.3.2444",
    "Palliative Care Diagnosis": "2.16.840.1.113883.3.464.1003.1167",
    "Palliative Care Encounter": "2.16.840.1.113883.3.464.1003.101.12.1090",
    "Palliative Care Intervention": "2.16.840.1.113883.3.464.1003.198.12.1135",
    "Personality Disorder Emotionally Labile": "2.16.840.1.113883.3.67.1.101.1.246",
    "Pervasive Developmental Disorder": "2.16.840.1.113883.3.464.1003.105.12.1152",
    "PHQ 9 and PHQ 9M Tools": "2.16.840.1.113883.3.67.1.101.1.263",
    "Schizophrenia or Psychotic Disorder": "2.16.840.1.113883.3.464.1003.105.12.1104",
}


def main(git_dir: str) -> None:
    def show(path: str) -> str:
        return subprocess.check_output(  # noqa: S603 - a fixed git command on a given checkout
            ["git", "-C", git_dir, "show", f"HEAD:{path}"], text=True)  # noqa: S607

    commit = subprocess.check_output(  # noqa: S603
        ["git", "-C", git_dir, "rev-parse", "HEAD"], text=True)  # noqa: S607
    out: dict[str, object] = {
        "source": f"https://github.com/{REPO}/tree/{commit.strip()}"
                  "/input/vocabulary/valueset/external",
        "valueSets": {},
    }
    for name, oid in VALUE_SETS.items():
        vs = json.loads(show(f"input/vocabulary/valueset/external/valueset-{oid}.json"))
        concepts = [(c["system"], c["code"]) for c in vs.get("expansion", {}).get("contains", [])]
        if not concepts:  # an unexpanded file: its enumerated compose
            concepts = [(inc["system"], c["code"])
                        for inc in vs.get("compose", {}).get("include", [])
                        for c in inc.get("concept", [])]
        out["valueSets"][name] = {  # type: ignore[index]
            "url": f"http://cts.nlm.nih.gov/fhir/ValueSet/{oid}",
            "version": vs.get("version"),
            "codes": sorted(f"{s}|{c}" for s, c in set(concepts)),
        }
    target = Path(__file__).resolve().parents[2] / "bhi_fhir" / "measures" / "valuesets.json"
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
