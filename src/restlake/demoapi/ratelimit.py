"""Per-client token buckets with GitHub-style and (optionally) IETF rate-limit headers."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

# Buckets of idle clients are dropped beyond this many, so a scan from many addresses stays bounded.
MAX_CLIENTS = 10_000


class RateLimitConfig(BaseModel):
    """Off unless ``requests_per_second`` is set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests_per_second: float | None = Field(None, gt=0.0, description="Refill rate; None disables limits.")
    burst: int | None = Field(None, ge=1, description="Bucket size; default ceil(requests_per_second).")
    ietf_headers: bool = Field(False, description="Also send RateLimit-Limit/-Remaining/-Reset.")

    @property
    def enabled(self) -> bool:
        return self.requests_per_second is not None

    @property
    def capacity(self) -> int:
        if self.burst is not None:
            return self.burst
        return max(1, math.ceil(self.requests_per_second or 1.0))


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int
    reset_after: int
    retry_after: int


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(
        self,
        config: RateLimitConfig,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._monotonic = monotonic
        self._wall = wall
        self._buckets: dict[str, _Bucket] = {}

    def check(self, client: str) -> RateDecision | None:
        """Take one token for ``client``; None when limits are off."""
        if self.config.requests_per_second is None:
            return None
        rate = self.config.requests_per_second
        cap = self.config.capacity
        now = self._monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._prune(now)
            bucket = self._buckets[client] = _Bucket(float(cap), now)
        bucket.tokens = min(float(cap), bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        reset_after = math.ceil((cap - bucket.tokens) / rate)
        retry_after = 0 if allowed else max(1, math.ceil((1.0 - bucket.tokens) / rate))
        return RateDecision(
            allowed=allowed,
            limit=cap,
            remaining=int(bucket.tokens),
            reset_epoch=math.ceil(self._wall()) + reset_after,
            reset_after=reset_after,
            retry_after=retry_after,
        )

    def _prune(self, now: float) -> None:
        rate = self.config.requests_per_second or 1.0
        cap = self.config.capacity
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * rate >= cap]
        for key in full:
            del self._buckets[key]
        log.info("rate limiter pruned idle clients", extra={"pruned": len(full)})

    def headers(self, decision: RateDecision) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(decision.remaining),
            "X-RateLimit-Reset": str(decision.reset_epoch),
        }
        if self.config.ietf_headers:
            # The IETF draft's Reset is delta-seconds, unlike GitHub's epoch seconds.
            out["RateLimit-Limit"] = str(decision.limit)
            out["RateLimit-Remaining"] = str(decision.remaining)
            out["RateLimit-Reset"] = str(decision.reset_after)
        if not decision.allowed:
            out["Retry-After"] = str(decision.retry_after)
        return out
