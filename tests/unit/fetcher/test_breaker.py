from __future__ import annotations

import pytest
from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.breaker import (
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    endpoint_of,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_threshold_then_half_opens_for_one_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker("http://api/v1/items", failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.before_request()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match="circuit open for http://api/v1/items after 3") as info:
        breaker.before_request()
    assert isinstance(info.value, TransientError) and info.value.retry_after == 10
    clock.t = 10
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_request()  # the one probe
    with pytest.raises(CircuitOpenError):
        breaker.before_request()  # no second request while the probe is out
    breaker.record_failure()  # the probe failed: open for another cool-down
    assert breaker.state is BreakerState.OPEN
    clock.t = 20
    breaker.before_request()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker("e", failure_threshold=2, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_registry_keys_by_endpoint_without_query_or_credentials() -> None:
    registry = BreakerRegistry()
    a = registry.for_url(URL("https://u:pw@api.example/v1/items?page=2&api_key=x"))
    b = registry.for_url(URL("https://api.example/v1/items?page=3"))
    assert a is b
    assert endpoint_of(URL("https://u:pw@api.example/v1/items?api_key=x")) == "https://api.example/v1/items"
    assert registry.for_url(URL("https://api.example/v1/other")) is not a
