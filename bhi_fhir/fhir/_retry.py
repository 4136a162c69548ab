"""Retry policy: how long to wait before trying again, kept apart from HTTP so it is testable.

Backoff is exponential with *full jitter* (a uniform draw in ``[0, min(max, base·2^n)]``) so
many workers hitting one struggling server spread out instead of retrying in lockstep.
A server's ``Retry-After`` (seconds or an HTTP date) replaces the draw, capped at
``backoff_max`` so one odd header cannot park a sync for an hour.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Indirection so tests can record waits instead of sleeping (monkeypatch `_retry.sleep`).
sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None if absent/unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``max_retries`` extra attempts after the first."""

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before retry number ``attempt`` (0-based), honouring the server's hint."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return self.rng.uniform(0, ceiling)
