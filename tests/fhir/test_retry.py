"""Backoff arithmetic without any HTTP."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from bhi_fhir.fhir._retry import RetryPolicy, parse_retry_after


def test_retry_after_seconds() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-3") == 0.0


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Thu, 26 Nov 2026 12:00:12 GMT", now=now) == 12.0
    assert parse_retry_after("Thu, 26 Nov 2026 11:00:00 GMT", now=now) == 0.0


def test_retry_after_garbage_or_absent() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_max=4, rng=random.Random(1))
    for attempt in range(10):
        ceiling = min(4, 0.5 * 2**attempt)
        draws = [policy.delay(attempt) for _ in range(50)]
        assert all(0 <= d <= ceiling for d in draws)
        assert len(set(draws)) > 1  # jittered, not lockstep


def test_retry_after_replaces_the_draw_but_is_capped() -> None:
    policy = RetryPolicy(backoff_max=30)
    assert policy.delay(0, retry_after=12) == 12
    assert policy.delay(0, retry_after=3600) == 30
