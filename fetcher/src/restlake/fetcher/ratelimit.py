"""Client-side request budgets: a token bucket per source, tightened by what the server advertises.

Servers announce their budget in three dialects, all understood here:

* GitHub style ``X-RateLimit-Limit/-Remaining/-Reset``, where Reset is an epoch in seconds (GitHub),
  an epoch in milliseconds (some gateways) or delta-seconds (others): told apart by magnitude;
* the IETF draft's ``RateLimit-Limit/-Remaining/-Reset`` (Reset in delta-seconds), and its later
  structured form ``RateLimit: "default";r=<remaining>;t=<reset>`` with ``RateLimit-Policy: q=..;w=..``;
* ``Retry-After`` on 429/503 (handled by the client's retry loop, which tells the limiter).

The limiter spends the local bucket first, then, when the server says few requests are left, spaces
the rest evenly until the window resets, and waits for the reset when none are left, so a
well-behaved server never has to answer 429.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# Below this many remaining requests the limiter starts pacing (fraction of the advertised limit).
LOW_WATER_FRACTION = 0.1
# Added to a server-announced reset: clocks and rounding differ by a little on every server.
RESET_MARGIN_S = 0.05
# An epoch in milliseconds is above this (year 2001 in ms); an epoch in seconds is above _EPOCH_S.
_EPOCH_MS = 1_000_000_000_000
_EPOCH_S = 100_000_000
# A reset further away than this is not believed (a misparsed header must not stall a source a day).
MAX_RESET_S = 3600.0

_PARAM = re.compile(r";\s*([a-z]+)\s*=\s*(-?[0-9.]+)", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimitHint:
    """What a response said about the remaining budget; None where it said nothing."""

    limit: int | None = None
    remaining: int | None = None
    reset_after: float | None = None  # seconds from now until the window resets


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.split(",")[0].strip())
    except ValueError:
        return None


def reset_seconds(value: float, now: float) -> float:
    """A reset header as seconds from now: epoch ms, epoch s or delta-seconds, told apart by size."""
    if value >= _EPOCH_MS:
        delta = value / 1000.0 - now
    elif value >= _EPOCH_S:
        delta = value - now
    else:
        delta = value
    return min(max(0.0, delta), MAX_RESET_S)


def _structured(value: str | None) -> dict[str, float]:
    """Parameters of an IETF structured-field item (``"default";r=5;t=30``), first item only."""
    if not value:
        return {}
    first = value.split(",")[0]
    return {k.lower(): float(v) for k, v in _PARAM.findall(first)}


def parse_rate_limit_headers(headers: Mapping[str, str], now: float | None = None) -> RateLimitHint:
    """The budget a response advertises, from whichever dialect it speaks (IETF wins when both are sent)."""
    now = time.time() if now is None else now
    limit = _number(headers.get("RateLimit-Limit"))
    remaining = _number(headers.get("RateLimit-Remaining"))
    reset = _number(headers.get("RateLimit-Reset"))
    # The IETF reset is always delta-seconds, never an epoch.
    reset_after = min(max(0.0, reset), MAX_RESET_S) if reset is not None else None
    structured = _structured(headers.get("RateLimit"))
    if "r" in structured:
        remaining = structured["r"]
    if "t" in structured:
        reset_after = min(max(0.0, structured["t"]), MAX_RESET_S)
    policy = _structured(headers.get("RateLimit-Policy"))
    if limit is None and "q" in policy:
        limit = policy["q"]
    if remaining is None:
        remaining = _number(headers.get("X-RateLimit-Remaining"))
    if limit is None:
        limit = _number(headers.get("X-RateLimit-Limit"))
    if reset_after is None:
        x_reset = _number(headers.get("X-RateLimit-Reset"))
        if x_reset is not None:
            reset_after = reset_seconds(x_reset, now)
    if reset_after is None and "w" in policy and remaining is not None and remaining <= 0:
        reset_after = min(policy["w"], MAX_RESET_S)  # no reset given: the whole window is the bound
    return RateLimitHint(
        limit=int(limit) if limit is not None else None,
        remaining=int(remaining) if remaining is not None else None,
        reset_after=reset_after,
    )


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``take`` says how long to wait for one."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1, got {rate} and {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def take(self) -> float:
        """Reserve one token; returns the seconds to wait before using it (0 when one is there now).

        Tokens may go negative: a reservation is a promise, so concurrent callers queue fairly.
        """
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RateLimiter:
    """One source's budget: its token bucket plus the pacing the server's headers ask for."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        respect_headers: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self.respect_headers = respect_headers
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._not_before = 0.0  # monotonic time before which no request may go out
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        """Reserve the next request's slot; returns how long to wait for it (no sleeping)."""
        wait = self.bucket.take()
        return max(wait, self._not_before - self._clock())

    async def acquire(self) -> float:
        """Wait until a request may go out; returns the seconds waited."""
        async with self._lock:
            wait = self.delay()
            if wait > 0:
                await self._sleep(wait)  # type: ignore[misc]
            return max(0.0, wait)

    def hold(self, seconds: float) -> None:
        """No request before ``seconds`` from now (a Retry-After, an exhausted window)."""
        self._not_before = max(self._not_before, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str]) -> RateLimitHint | None:
        """Tighten the pace from a response's rate-limit headers; returns what was read."""
        if not self.respect_headers:
            return None
        hint = parse_rate_limit_headers(headers, self._wall())
        if hint.remaining is None or hint.reset_after is None:
            return hint
        if hint.remaining <= 0:
            self.hold(hint.reset_after + RESET_MARGIN_S)
        else:
            low_water = max(1, int((hint.limit or 0) * LOW_WATER_FRACTION))
            if hint.remaining < low_water:
                # Spread what is left over the rest of the window instead of spending it at once.
                self.hold(hint.reset_after / hint.remaining)
        return hint
