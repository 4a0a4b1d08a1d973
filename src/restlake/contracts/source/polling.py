"""``spec.poll`` and ``spec.rateLimit``: when the fetcher asks, and how fast."""

from __future__ import annotations

from pydantic import Field

from restlake.contracts.model import SpecModel
from restlake.contracts.values import Duration, bounded_duration


class Poll(SpecModel):
    """How often to poll."""

    interval: bounded_duration("30d", "1s") = Field(  # type: ignore[valid-type]
        Duration("60s"), description="Time between the starts of two polls, at least 1s, at most 30d."
    )
    jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Random fraction of the interval added, so sources do not poll in lockstep.",
    )


class RateLimit(SpecModel):
    """Client-side rate limit (token bucket) on requests to the API."""

    requests_per_second: float = Field(
        5, gt=0, le=1000, description="Sustained request rate, at most 1000 requests per second."
    )
    burst: int = Field(1, ge=1, le=1000, description="Requests that may go out back to back, at most 1000.")
    respect_headers: bool = Field(
        True, description="Honour Retry-After and X-RateLimit-* headers by slowing down further."
    )
