"""Settings of the fetcher process (``RESTLAKE_FETCHER_*``); per-source behaviour lives in the spec."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from restlake.fetcher.client import DEFAULT_MAX_BODY_BYTES, RetryPolicy
from restlake.settings import RestlakeSettings


class FetcherSettings(RestlakeSettings):
    """How one fetcher process behaves, whatever sources it runs."""

    model_config = SettingsConfigDict(env_prefix="RESTLAKE_FETCHER_")

    ops_host: str = Field(
        "127.0.0.1",
        description="Address of /metrics, /healthz, /readyz; set 0.0.0.0 in a pod so probes reach it.",
    )
    ops_port: int | None = Field(
        9108, ge=0, le=65535, description="Port of the ops endpoints; 0 picks a free one, None disables."
    )
    per_host_limit: int = Field(
        4, ge=1, description="Concurrent connections per API host, across sources: politeness towards APIs."
    )
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, description="Larger response bodies are bad pages (bytes)."
    )
    max_attempts: int = Field(5, ge=1, description="Tries per page request, the first included.")
    retry_base_delay: float = Field(
        0.5, ge=0.0, description="First backoff ceiling (seconds), doubled per try."
    )
    retry_max_delay: float = Field(60.0, ge=0.0, description="Longest single backoff (seconds).")
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures of an endpoint that open its circuit."
    )
    breaker_cooldown: float = Field(
        30.0, ge=0.0, description="Seconds an open circuit waits before one probe request."
    )
    checkpoint_pages: int = Field(
        20, ge=1, description="Pages between delivery confirmations and state commits within a pass."
    )
    delivery_timeout: float = Field(
        120.0, gt=0.0, description="Seconds to wait for Kafka to confirm a checkpoint's records."
    )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.retry_base_delay, self.retry_max_delay)
