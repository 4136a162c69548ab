"""Transactions of bounded size for one patient's writes, with every reference still valid.

Inside a transaction Bundle, entries refer to each other by ``urn:uuid`` fullUrl (a screening
panel's ``hasMember``, a Task's ``basedOn`` its CarePlan, a Provenance's ``target``); the
server resolves those only within the same Bundle (FHIR R4 transaction processing,
https://hl7.org/fhir/R4/http.html#trules). So writes are cut into *units*, the connected parts
of the graph of ``urn:uuid`` references between them, and units are packed in order into
transactions of at most ``max_entries`` entries. A unit is never split: one larger than
``max_entries`` is a transaction of its own. References to resources already on the server
(``Type/id``) need nothing. Every entry stays a conditional create or a versioned update, so a
re-run after a part failed finds the parts that were written and never duplicates them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bhi_fhir.sync.planning import SyncWrite

__all__ = ["transaction_parts"]


def _urn_references(value: Any) -> Iterator[str]:
    """Every ``urn:uuid:`` reference string inside a resource."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref.startswith("urn:uuid:"):
            yield ref
        for item in value.values():
            if isinstance(item, dict | list):
                yield from _urn_references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _urn_references(item)


def transaction_parts(writes: Sequence[SyncWrite], max_entries: int) -> list[list[SyncWrite]]:
    """``writes`` as consecutive transactions of at most ``max_entries`` entries (a unit of
    writes referring to each other by ``urn:uuid`` larger than that is one part of its own),
    in the order of each unit's first write."""
    if len(writes) <= max(1, max_entries):
        return [list(writes)]
    parent = list(range(len(writes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    index = {w.full_url: i for i, w in enumerate(writes)}
    for i, write in enumerate(writes):
        for ref in _urn_references(write.resource):
            j = index.get(ref)
            if j is not None and root(i) != root(j):
                parent[root(i)] = root(j)
    units: dict[int, list[SyncWrite]] = {}
    for i, write in enumerate(writes):
        units.setdefault(root(i), []).append(write)
    parts: list[list[SyncWrite]] = []
    for unit in units.values():
        if parts and len(parts[-1]) + len(unit) <= max_entries:
            parts[-1].extend(unit)
        else:
            parts.append(list(unit))
    return parts
