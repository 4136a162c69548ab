"""Lay out SUSHI's output as a FHIR NPM package: package/package.json, package/.index.json and
one JSON file per resource, and the same as a reproducible .tgz (sorted entries, fixed times and
owners, gzip without a timestamp), so a rebuild from unchanged sources is byte-identical.

    python3 assemble.py SUSHI_RESOURCES_DIR OUT_DIR TGZ_NAME

Standard library only: the build runs before any virtual environment exists.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from pathlib import Path

INDEX_FIELDS = ("url", "version", "kind", "type")
# ImplementationGuide.definition.parameter codes R4 defines (a required binding). SUSHI also
# writes the IG Publisher's own (copyrightyear, releaselabel), which are not valid R4.
R4_GUIDE_PARAMETERS = frozenset({
    "apply", "path-resource", "path-pages", "path-tx-cache", "expansion-parameter",
    "rule-broken-links", "generate-xml", "generate-json", "generate-turtle", "html-template",
})


def r4_guide(ig: dict) -> dict:
    """SUSHI's ImplementationGuide (an IG Publisher input) as a valid R4 resource: without the
    non-R4 parameters and without an empty page list."""
    definition = ig.get("definition", {})
    parameters = [p for p in definition.get("parameter", []) if p["code"] in R4_GUIDE_PARAMETERS]
    if parameters:
        definition["parameter"] = parameters
    else:
        definition.pop("parameter", None)
    page = definition.get("page", {})
    if page.get("page") == []:
        del page["page"]
    return ig


def package_json(ig: dict) -> dict:
    """The package manifest, from the ImplementationGuide SUSHI generated (sushi-config.yaml)."""
    return {
        "name": ig["packageId"],
        "version": ig["version"],
        "title": ig.get("title", ig["name"]),
        "description": ig.get("description", ""),
        "canonical": ig["url"].split("/ImplementationGuide/")[0],
        "url": ig["url"].split("/ImplementationGuide/")[0],
        "fhirVersions": ig["fhirVersion"],
        "type": "IG",
        "license": ig.get("license", ""),
        "author": ig.get("publisher", ""),
        "dependencies": {"hl7.fhir.r4.core": "4.0.1"},
        "jurisdiction": "urn:iso:std:iso:3166#US",
    }


def main(resources_dir: str, out_dir: str, tgz_name: str) -> int:
    files: dict[str, bytes] = {}
    index = []
    ig = None
    for path in sorted(Path(resources_dir).glob("*.json")):
        raw = path.read_bytes()
        resource = json.loads(raw)
        if resource.get("resourceType") == "ImplementationGuide":
            ig = r4_guide(resource)
            raw = (json.dumps(ig, indent=2, ensure_ascii=False) + "\n").encode()
        files[path.name] = raw
        entry = {"filename": path.name, "resourceType": resource["resourceType"],
                 "id": resource["id"]}
        entry.update({k: resource[k] for k in INDEX_FIELDS if k in resource})
        index.append(entry)
    if ig is None:
        sys.stderr.write("no ImplementationGuide in the SUSHI output\n")
        return 1
    files["package.json"] = (json.dumps(package_json(ig), indent=2) + "\n").encode()
    files[".index.json"] = (json.dumps({"index-version": 1, "files": index}, indent=2)
                            + "\n").encode()

    package = Path(out_dir, "package")
    package.mkdir(parents=True, exist_ok=True)
    for name, raw in files.items():
        (package / name).write_bytes(raw)

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(files[name])
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    with open(Path(out_dir, tgz_name), "wb") as out, \
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(buffer.getvalue())
    sys.stdout.write(f"{len(files) - 2} resources -> {package} and {Path(out_dir, tgz_name)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
