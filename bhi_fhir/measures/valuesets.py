"""The published value sets the measures read, as code sets. Pure.

The expansions live in ``valuesets.json`` (written by ``tools/measures/extract_valuesets.py``
from the eCQM value set files of cqframework/ecqm-content-qicore-2025, whose CQL the measures
follow; the file names its source commit). A code matches by system and code; the system is
compared without its ``http``/``https`` scheme, since EHRs write both for CPT and HCPCS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

__all__ = ["SOURCE", "any_coding_in", "codes", "codings", "url"]

_FILE: Final = Path(__file__).with_name("valuesets.json")


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_FILE.read_text(encoding="utf-8"))
    return loaded


def _key(system: str, code: str) -> str:
    return f"{system.split('://', 1)[-1]}|{code}"


@lru_cache(maxsize=64)
def codes(name: str) -> frozenset[str]:
    """The codes of the value set the CQL calls ``name``, as ``system-without-scheme|code``."""
    entry = _data()["valueSets"][name]
    return frozenset(_key(*item.split("|", 1)) for item in entry["codes"])


def url(name: str) -> str:
    return str(_data()["valueSets"][name]["url"])


SOURCE: Final = str(_data()["source"])


def codings(concepts: object) -> Iterable[Mapping[str, Any]]:
    """Every Coding of a CodeableConcept or a list of them."""
    items = concepts if isinstance(concepts, list) else [concepts]
    for concept in items:
        if isinstance(concept, Mapping):
            for coding in concept.get("coding") or []:
                if isinstance(coding, Mapping):
                    yield coding


def any_coding_in(concepts: object, *names: str) -> bool:
    """True when a Coding of ``concepts`` is in one of the named value sets."""
    wanted = [codes(name) for name in names]
    for coding in codings(concepts):
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and isinstance(code, str):
            key = _key(system, code)
            if any(key in found for found in wanted):
                return True
    return False
