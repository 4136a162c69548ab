"""Exact accounting: what a run says it created is what it created on the server.

A transaction whose answer is lost (a timeout, a connection reset after the request was sent,
a 5xx from a gateway after the server committed) has an unknown outcome. Re-sending it is safe
(every entry is a conditional create or a versioned update) but the answer to the re-send says
"existed" (200) for what the lost attempt created, and a versioned update fails its
``If-Match`` — so counting from the re-send's answer loses the lost attempt's work.

So every Provenance a run writes carries the run's tag (``meta.tag`` ``RUN_TAG_SYSTEM|<run>``)
beside its deterministic key (``BHI_IDENTIFIER|provenance:…``), and rides in the same
transaction as its targets (atomic: FHIR R4 transaction, https://hl7.org/fhir/R4/http.html#transaction).
After an unknown outcome, one search ``Provenance?_tag=<keys>&_tag=<run tag>`` says whether the
transaction committed (any of its Provenance is this run's) before anything is counted or
re-sent; and an entry answered "existed" is counted as created when its Provenance is this
run's (written by an earlier attempt of the same run). A transaction without Provenance (a
server that refuses Provenance) cannot be told apart: it is re-sent and counted by the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bhi_fhir.codes import BHI_BASE, BHI_IDENTIFIER
from bhi_fhir.fhir import FhirClient, FhirError, RetryableError
from bhi_fhir.fhirjson import entry_answers
from bhi_fhir.sync.planning import SyncWrite

__all__ = [
    "RUN_TAG_SYSTEM",
    "Ledger",
    "mark_run",
    "outcome_unknown",
    "outcomes",
    "provenance_of_run",
    "send_accounted",
]

Resource = dict[str, Any]

RUN_TAG_SYSTEM = f"{BHI_BASE}/sync-run"  # meta.tag of every Provenance: the run that wrote it
_KEYS_PER_SEARCH = 20  # Provenance keys per search: the URL stays far below 8 KB


class Ledger:
    """A run's count of what it did, by identifier: what was counted, and the transactions
    whose outcome stayed unknown (searched before HAPI committed them, then re-sent or
    re-planned). A re-plan sees what such a late commit wrote as on file ("unchanged"); the
    run settles them at its end (:meth:`settle`), so they are counted once, not lost."""

    def __init__(self) -> None:
        self.counted: set[str] = set()  # identifiers counted created or updated by this run
        self.uncertain: list[list[SyncWrite]] = []  # transactions of unknown outcome

    def count(self, writes: Sequence[SyncWrite], outcome: Sequence[str]) -> None:
        self.counted.update(w.identifier for w, o in zip(writes, outcome, strict=True)
                            if o in ("created", "updated"))

    async def settle(self, client: FhirClient, run_id: str
                     ) -> list[tuple[list[SyncWrite], list[str]]]:
        """The uncertain transactions that did commit, with the outcome of each write not
        counted since (an update only when its own Provenance is this run's)."""
        keys = [_key(w) for part in self.uncertain for w in part
                if w.resource_type == "Provenance"]
        ours = await provenance_of_run(client, keys, run_id) if keys else set()
        settled: list[tuple[list[SyncWrite], list[str]]] = []
        for part in self.uncertain:
            if not ours & {_key(w) for w in part if w.resource_type == "Provenance"}:
                continue  # never committed
            by_target = _provenance_by_target(part)
            writes, outcome = [], []
            for write, result in zip(part, outcomes(part, None, ours), strict=True):
                key = _key(write) if write.resource_type == "Provenance" else by_target.get(
                    write.full_url)
                if write.identifier in self.counted or result == "existed":
                    continue
                if write.method == "update" and (key is None or key not in ours):
                    continue
                writes.append(write)
                outcome.append(result)
            self.count(writes, outcome)
            if writes:
                settled.append((writes, outcome))
        self.uncertain = []
        return settled


def mark_run(writes: Iterable[SyncWrite], run_id: str) -> None:
    """Put the run's tag on every Provenance among ``writes`` (in place, once)."""
    for write in writes:
        if write.resource_type != "Provenance":
            continue
        tags = write.resource.setdefault("meta", {}).setdefault("tag", [])
        tags[:] = [t for t in tags if t.get("system") != RUN_TAG_SYSTEM]
        tags.append({"system": RUN_TAG_SYSTEM, "code": run_id})


def outcome_unknown(err: Exception) -> bool:
    """The server may have committed the request: it was sent and no answer says it did not."""
    if not isinstance(err, RetryableError) or not err.request_sent:
        return False
    return err.status not in (429, 503)  # both say "not processed"


def _escape(value: str) -> str:
    """A token search value (FHIR R4 search escaping: ``\\``, ``,``, ``$``, ``|``)."""
    for char in ("\\", ",", "$", "|"):
        value = value.replace(char, "\\" + char)
    return value


def _key(write: SyncWrite) -> str:
    return write.identifier  # a Provenance's identifier is its tag key


async def provenance_of_run(
    client: FhirClient, keys: Sequence[str], run_id: str
) -> set[str]:
    """Of the Provenance ``keys``, those on the server carrying this run's tag (uncached)."""
    found: set[str] = set()
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), _KEYS_PER_SEARCH):
        batch = wanted[start:start + _KEYS_PER_SEARCH]
        codes = ",".join(f"{BHI_IDENTIFIER}|{_escape(k)}" for k in batch)
        response = await client.request(
            "GET", "Provenance",
            params=[("_tag", codes), ("_tag", f"{RUN_TAG_SYSTEM}|{_escape(run_id)}"),
                    ("_count", str(2 * len(batch)))],
            headers={"Cache-Control": "no-cache"},  # a search cached before the commit
        )
        page = response.json()
        for entry in page.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            tags = ((resource or {}).get("meta") or {}).get("tag") or []
            found.update(str(t.get("code")) for t in tags
                         if isinstance(t, Mapping) and t.get("system") == BHI_IDENTIFIER
                         and t.get("code") in batch)
    return found


def _provenance_by_target(writes: Sequence[SyncWrite]) -> dict[str, str]:
    """fullUrl of each write → the key of the Provenance (among ``writes``) naming it."""
    out: dict[str, str] = {}
    for write in writes:
        if write.resource_type == "Provenance":
            for target in write.resource.get("target") or []:
                ref = target.get("reference") if isinstance(target, Mapping) else None
                if isinstance(ref, str):
                    out.setdefault(ref, _key(write))
    return out


def outcomes(
    writes: Sequence[SyncWrite], answered: Sequence[str] | None, ours: set[str]
) -> list[str]:
    """created / updated / existed per write. ``answered``: each entry's answer status from
    the transaction response (None: it committed but the answer was lost); ``ours``: the keys
    of this run's Provenance found on the server."""
    by_target = _provenance_by_target(writes)
    out: list[str] = []
    for i, write in enumerate(writes):
        if write.method == "update":
            out.append("updated")
            continue
        key = _key(write) if write.resource_type == "Provenance" else by_target.get(write.full_url)
        status = answered[i] if answered is not None else ""
        if status.startswith("201") or (key is not None and key in ours):
            out.append("created")
        else:
            out.append("existed")
    return out


def _existed_keys(writes: Sequence[SyncWrite], answered: Sequence[str]) -> list[str]:
    """Provenance keys to check: of creates answered other than 201 (or their Provenance)."""
    by_target = _provenance_by_target(writes)
    keys: list[str] = []
    for write, status in zip(writes, answered, strict=True):
        if write.method != "create" or status.startswith("201"):
            continue
        key = _key(write) if write.resource_type == "Provenance" else by_target.get(write.full_url)
        if key is not None:
            keys.append(key)
    return keys


async def send_accounted(
    client: FhirClient,
    writes: Sequence[SyncWrite],
    run_id: str,
    *,
    max_resends: int,
    backoff: float = 1.0,
    ledger: Ledger | None = None,
) -> tuple[Resource | None, list[str]]:
    """Send ``writes`` as one transaction; return the answer (None when it was lost and the
    search found the transaction committed) and each write's outcome. Raises the last error
    when the outcome stays unknown after ``max_resends`` re-sends, or a known failure."""
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [w.entry() for w in writes]}
    keys = [_key(w) for w in writes if w.resource_type == "Provenance"]
    attempt = 0
    while True:
        try:
            response = await client.transaction(bundle, idempotent=False)
        except RetryableError as err:
            if not outcome_unknown(err) or not keys:
                raise
            try:
                ours = await provenance_of_run(client, keys, run_id)
            except FhirError:  # cannot tell: the write's own failure stands (transient)
                raise err from None
            if ours:  # committed (atomic): counted from the server, not re-sent
                result = outcomes(writes, None, ours)
                if ledger is not None:
                    ledger.count(writes, result)
                return None, result
            if ledger is not None:  # not yet: the server may still commit it
                ledger.uncertain.append(list(writes))
            if attempt >= max_resends:
                raise
            attempt += 1
            await asyncio.sleep(backoff * attempt)
            continue
        answered = [answer.status for answer in entry_answers(response)]
        answered += [""] * (len(writes) - len(answered))
        check = _existed_keys(writes, answered)  # 200: earlier, or a lost attempt of ours
        ours = await provenance_of_run(client, check, run_id) if check else set()
        result = outcomes(writes, answered, ours)
        if ledger is not None:
            ledger.count(writes, result)
        return response, result
