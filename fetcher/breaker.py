"""Circuit breakers per endpoint: stop hammering an endpoint that keeps failing, probe it after a pause."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.page_errors import PageError

log = logging.getLogger(__name__)


class CircuitOpenError(TransientError, PageError):
    """The endpoint failed too often in a row; no request is sent until its cool-down has passed."""

    reason = "circuit_open"


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; half-open after ``cooldown`` seconds.

    Half-open lets one request through: success closes the circuit, failure re-opens it for another
    cool-down. Only transport and server failures count; a 304, a 4xx or a bad body say nothing
    about whether the endpoint is up.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self.failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_request(self) -> None:
        """Raise ``CircuitOpenError`` unless a request may go out now."""
        opened_at = self._opened_at
        if opened_at is None:  # closed
            return
        open_for = self._clock() - opened_at
        if open_for >= self.cooldown and not self._trial_in_flight:  # half-open: one trial request
            self._trial_in_flight = True
            return
        left = max(0.0, self.cooldown - open_for)
        raise CircuitOpenError(
            f"circuit open for {self.endpoint} after {self.failures} consecutive failures; "
            f"next probe in {left:.1f}s",
            retry_after=left,
        )

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit closed for %s", self.endpoint, extra={"url": self.endpoint})
        self.failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self.failures += 1
        was_trial, self._trial_in_flight = self._trial_in_flight, False
        if was_trial or (self._opened_at is None and self.failures >= self.failure_threshold):
            self._opened_at = self._clock()
            log.warning(
                "circuit opened for %s after %d consecutive failures (cool-down %.0fs)",
                self.endpoint,
                self.failures,
                self.cooldown,
                extra={"url": self.endpoint},
            )


def endpoint_of(url: URL) -> str:
    """Breaker key: scheme, host, port and path, never the query (bounded, and free of secrets)."""
    return str(url.with_query(None).with_fragment(None).with_user(None))


class BreakerRegistry:
    """One breaker per endpoint, shared by every source of a process that calls it."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def for_url(self, url: URL) -> CircuitBreaker:
        key = endpoint_of(url)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(
                key, failure_threshold=self.failure_threshold, cooldown=self.cooldown, clock=self._clock
            )
        return breaker
