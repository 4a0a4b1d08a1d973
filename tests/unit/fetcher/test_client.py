from __future__ import annotations

from datetime import UTC, datetime

from restlake.fetcher.client import RetryPolicy, parse_retry_after


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:59:00 GMT", now) == 0.0  # in the past: go now
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_bounded_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=10.0)
    assert all(0 <= policy.delay(attempt, None) <= min(10.0, 2 ** (attempt - 1)) for attempt in range(1, 12))
    assert policy.delay(1, 3.5) == 3.5
    assert policy.delay(1, 500.0) == 10.0
