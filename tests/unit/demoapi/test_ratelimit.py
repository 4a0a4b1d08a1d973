"""Token-bucket rate limits: headers on every listing response, 429 with Retry-After when empty."""

from __future__ import annotations

import json
import time
from typing import Any

from restlake.demoapi import DatasetConfig, DemoApiConfig, RateLimitConfig, running_demo_api
from restlake.demoapi.ratelimit import RateLimiter

from .demoapi_http import http_get


def _config(**limits: Any) -> DemoApiConfig:
    return DemoApiConfig(dataset=DatasetConfig(initial_records=10), rate_limit=RateLimitConfig(**limits))


def test_burst_then_429_with_retry_after() -> None:
    with running_demo_api(_config(requests_per_second=0.5, burst=3)) as api:
        url = api.url("/v1/link/items")
        remaining = []
        for _ in range(3):
            status, headers, _ = http_get(url)
            assert status == 200 and headers["X-RateLimit-Limit"] == "3"
            remaining.append(int(headers["X-RateLimit-Remaining"]))
            assert int(headers["X-RateLimit-Reset"]) >= int(time.time())
            assert "RateLimit-Limit" not in headers
        assert remaining == [2, 1, 0]
        status, headers, body = http_get(url)
        assert status == 429
        assert json.loads(body)["error"] == "rate_limited"
        assert headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(headers["Retry-After"]) <= 2  # one token at 0.5/s takes <= 2 s
        # Another client (another credential) has its own bucket; admin is never limited.
        assert http_get(url, {"Authorization": "Bearer other"})[0] == 200
        state = api.state()
        assert state["rate_limited"] == 1 and "X-RateLimit-Limit" not in http_get(api.url("/healthz"))[1]


def test_ietf_headers_flag() -> None:
    with running_demo_api(_config(requests_per_second=100, ietf_headers=True)) as api:
        _, headers, _ = http_get(api.url("/v1/offset/items"))
        assert headers["RateLimit-Limit"] == "100" and headers["RateLimit-Remaining"] == "99"
        assert 0 <= int(headers["RateLimit-Reset"]) <= 1  # delta-seconds, unlike X-RateLimit-Reset


def test_no_limit_headers_when_off() -> None:
    with running_demo_api(_config()) as api:
        status, headers, _ = http_get(api.url("/v1/offset/items"))
        assert status == 200 and "X-RateLimit-Limit" not in headers


def test_bucket_refills_with_time() -> None:
    now = [100.0]
    limiter = RateLimiter(RateLimitConfig(requests_per_second=2, burst=2), monotonic=lambda: now[0])
    assert [limiter.check("c").allowed for _ in range(3)] == [True, True, False]  # type: ignore[union-attr]
    denied = limiter.check("c")
    assert denied is not None and denied.retry_after == 1 and denied.remaining == 0
    now[0] += 0.5  # one token at 2/s
    assert limiter.check("c").allowed  # type: ignore[union-attr]
    assert not limiter.check("c").allowed  # type: ignore[union-attr]
    now[0] += 10  # refills only up to the burst
    assert [limiter.check("c").allowed for _ in range(3)] == [True, True, False]  # type: ignore[union-attr]
