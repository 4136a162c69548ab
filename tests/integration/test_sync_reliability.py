"""Exactly once under crashes and a hostile network, on the real HAPI.

* ``bhi-fhir sync`` is SIGKILLed at several points of a run (when HAPI shows a given share of
  the planned Observations written), then re-run to completion: every identifier a clean dry
  run plans is on the server exactly once.
* A fault-injecting reverse proxy (asyncio, 127.0.0.1 only, seeded RNG) sits between the sync
  and HAPI and answers 20 % of requests with 503, 429 + Retry-After, a hang past the client
  timeout or a connection reset — the last two *after* HAPI processed the request, so the
  response is lost but the write happened (the dangerous case for exactly-once).

Sizes: ``BHI_RELIABILITY_PATIENTS`` (default 390 patients ≈ 500 responses) for the kill test;
the proxy test uses 60 patients (≈ 80 responses) to keep the tier's time modest.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from bhi_fhir.sync import RunReport, run_sync
from tests.integration.conftest import CASE_SYSTEM, TAG_SYSTEM, RunTag
from tests.integration.test_sync import (
    _delete_case,  # noqa: F401  (autouse fixture: deletes this case's resources)
    assert_complete,
    config,
    planned_creates,
    seed_clinic,
)

KILL_PATIENTS = int(os.environ.get("BHI_RELIABILITY_PATIENTS", "390"))
PROXY_PATIENTS = 60
KILL_AT = (0.15, 0.4, 0.7)  # share of the planned Observations on the server
_CLI = Path(sys.executable).parent / "bhi-fhir"


def _observations(base: str, case_id: str) -> int:
    response = httpx.get(
        f"{base}/Observation",
        params={"_tag": f"{CASE_SYSTEM}|{case_id}", "_summary": "count"},
        headers={"Cache-Control": "no-cache"},
        timeout=30,
    )
    return int(response.json().get("total", 0))


def _sync_command(base: str, run_tag: RunTag, case_id: str, state: Path) -> list[str]:
    return [
        str(_CLI), "sync", "--server", base, "--today", "2026-11-26",
        "--state-url", f"sqlite:///{state}", "--where", f"_tag={CASE_SYSTEM}|{case_id}",
        "--tag", f"{TAG_SYSTEM}|{run_tag.code}", "--tag", f"{CASE_SYSTEM}|{case_id}",
        "--format", "json", "--max-entries", "50",
    ]  # fmt: skip


async def test_sigkill_at_three_points_then_rerun(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    responses = seed_clinic(fhir_base_url, run_tag, case_id, KILL_PATIENTS)
    assert responses >= (500 if KILL_PATIENTS >= 390 else 1)
    state = tmp_path / "state.db"
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    expected = planned_creates(dry)
    total_obs = _total_planned_observations(dry)
    assert total_obs > 0
    kills: list[tuple[int, int]] = []  # (Observations on the server when killed, exit code)
    command = _sync_command(fhir_base_url, run_tag, case_id, state)
    for share in KILL_AT:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        seen = 0
        try:
            while time.monotonic() < deadline and process.poll() is None:
                seen = _observations(fhir_base_url, case_id)
                if seen >= share * total_obs:
                    break
                await asyncio.sleep(0.3)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        kills.append((seen, process.returncode))
    # every run was killed mid-way (none finished on its own)
    assert all(code == -signal.SIGKILL for _, code in kills), kills
    assert 0 < _observations(fhir_base_url, case_id) < total_obs

    final = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    found = assert_complete(fhir_base_url, case_id, expected)
    print(f"\nSIGKILL test: {responses} responses, kills at {[n for n, _ in kills]} of "
          f"{total_obs} Observations, "
          f"{len(expected)} planned identifiers, {sum(found.values())} resources found, "
          "0 duplicates, 0 missing")


def _total_planned_observations(report: RunReport) -> int:
    """Screening Observations a full run writes: the dry run counts sets by their panel."""
    total = 0
    for diff in report.diffs:
        for change in diff.changes:
            if change.rule == "screening" and change.change == "create":
                # reason: "<instrument> scored N: K screening Observations"
                total += int(change.reason.rsplit(":", 1)[1].split()[0])
    return total


# --- the fault-injecting proxy ----------------------------------------------------------------


class FaultProxy:
    """HTTP/1.1 reverse proxy to ``upstream``; one response per connection (Connection: close).

    Faults, each ``rate / 4`` of requests: 503; 429 with ``Retry-After: 1``; forward, then
    hang past the client's timeout; forward, then reset the connection.

    Deterministic faults on transaction POSTs (``transaction_fault``, one of
    ``TRANSACTION_FAULTS``; None = off), on every transaction whose body contains
    ``transaction_match``: 401; 500; 422 with an OperationOutcome; 200 text/html (a login
    page); forward, then drop the answer's last entry (HAPI wrote them all); forward, then
    lose the answer (HAPI committed): a connection reset (``lost-reset``), a gateway's 502
    (``lost-502``) or a hang past the client's timeout (``lost-hang``); or hold the request
    ``hang`` seconds (past the client's timeout), forward, then reset (``lost-late``: the
    server commits after the client searched for the outcome).
    ``transaction_fault_times`` limits how many transactions get the fault (None: all);
    ``transaction_sizes`` records every transaction's entry count.
    """

    KINDS = ("503", "429", "hang", "reset")
    TRANSACTION_FAULTS = ("401", "500", "422", "html", "drop-entry", "lost-reset", "lost-502",
                          "lost-hang", "lost-late")

    def __init__(self, upstream: str, *, rate: float = 0.0, hang: float = 10.0,
                 seed: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.rate, self.hang = rate, hang
        self.rng = random.Random(seed)
        self.transaction_fault: str | None = None
        self.transaction_match = ""
        self.transaction_fault_times: int | None = None
        self.transaction_sizes: list[int] = []
        self.faults: Counter[str] = Counter()
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.http = httpx.AsyncClient(timeout=600)

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.http.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [tuple(x.split(":", 1)) for x in lines[1:] if ":" in x]
        length = next((int(v) for k, v in headers if k.strip().lower() == "content-length"), 0)
        body = await reader.readexactly(length) if length else b""
        self.requests += 1
        if self._faulty_transaction(method, body):
            fault: str | None = self.transaction_fault
        else:
            fault = self.rng.choice(self.KINDS) if self.rng.random() < self.rate else None
        try:
            if fault in ("503", "429", "401", "500", "422", "html"):
                self.faults[fault] += 1
                writer.write(_canned(fault))
                await writer.drain()
                return
            if fault == "lost-late":  # reaches the server after the client gave up waiting
                await asyncio.sleep(self.hang)
            keep = {"content-type", "accept", "if-none-exist", "if-match", "prefer",
                    "cache-control", "authorization"}
            upstream = await self.http.request(
                method, self.upstream + target, content=body,
                headers={k.strip(): v.strip() for k, v in headers if k.strip().lower() in keep},
            )
            if fault in ("hang", "lost-hang"):  # processed upstream, no answer in time
                self.faults[fault] += 1
                await asyncio.sleep(self.hang)
                return
            if fault == "lost-502":  # committed upstream, a gateway answers 502
                self.faults[fault] += 1
                writer.write(_canned("502"))
                await writer.drain()
                return
            if fault in ("reset", "lost-reset", "lost-late"):  # processed, the connection dies
                self.faults[fault] += 1
                transport = writer.transport
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    import socket
                    import struct

                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
                return
            content = upstream.content
            if fault == "drop-entry" and upstream.is_success:  # written, but not accounted for
                self.faults[fault] += 1
                answer = upstream.json()
                answer["entry"] = answer.get("entry", [])[:-1]
                content = json.dumps(answer).encode()
            out = [f"HTTP/1.1 {upstream.status_code} {upstream.reason_phrase}"]
            for name in ("content-type", "location", "etag", "last-modified", "retry-after"):
                if name in upstream.headers:
                    out.append(f"{name}: {upstream.headers[name]}")
            out += [f"Content-Length: {len(content)}", "Connection: close", "", ""]
            writer.write("\r\n".join(out).encode("latin-1") + content)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    def _faulty_transaction(self, method: str, body: bytes) -> bool:
        if method != "POST" or not body:
            return False
        try:
            bundle = json.loads(body)
        except ValueError:
            return False
        if not isinstance(bundle, dict) or bundle.get("type") != "transaction":
            return False
        self.transaction_sizes.append(len(bundle.get("entry") or []))
        if (self.transaction_fault is None or self.transaction_match not in body.decode()
                or self.transaction_fault_times == 0):
            return False
        if self.transaction_fault_times is not None:
            self.transaction_fault_times -= 1
        return True


def _canned(fault: str) -> bytes:
    """The whole HTTP response of a fault answered by the proxy itself (nothing forwarded)."""
    headers = ""
    body = b""
    if fault == "429":
        headers = "Retry-After: 1\r\n"
    elif fault == "html":
        headers = "Content-Type: text/html; charset=utf-8\r\n"
        body = b"<html><body><form action=/login>Sign in to continue</form></body></html>"
    elif fault == "422":
        headers = "Content-Type: application/fhir+json\r\n"
        body = json.dumps({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "business-rule",
             "diagnostics": "Injected: the server refuses this patient's writes"}]}).encode()
    status = "200" if fault == "html" else fault
    return (f"HTTP/1.1 {status} Injected\r\n{headers}Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode() + body


async def test_fault_injecting_proxy_loses_and_duplicates_nothing(
    fhir_base_url: str, run_tag: RunTag, case_id: str, tmp_path: Path
) -> None:
    seed_clinic(fhir_base_url, run_tag, case_id, PROXY_PATIENTS)
    dry = await run_sync(config(fhir_base_url, run_tag, case_id, tmp_path / "dry.db",
                                dry_run=True))
    expected = planned_creates(dry)
    upstream = httpx.URL(fhir_base_url)
    proxy = FaultProxy(f"{upstream.scheme}://{upstream.host}:{upstream.port}", rate=0.2,
                       hang=10.0, seed=20261126)
    origin = await proxy.start()
    try:
        proxied = origin + upstream.path
        report = await run_sync(config(
            proxied, run_tag, case_id, tmp_path / "state.db", timeout=8.0, max_retries=10,
            group_size=10, max_entries=40,
        ))
    finally:
        await proxy.stop()
    assert report.status == "ok", report.to_text()
    assert sum(proxy.faults.values()) >= 5, proxy.faults
    found = assert_complete(fhir_base_url, case_id, expected)
    print(f"\nproxy test: {proxy.requests} requests through the proxy, faults {dict(proxy.faults)},"
          f" {len(expected)} planned identifiers, {sum(found.values())} found, "
          "0 duplicates, 0 missing")
