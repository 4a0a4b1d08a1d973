"""The whole configuration of one demo API server."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from restlake.demoapi.auth import AuthConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.faults import FaultConfig
from restlake.demoapi.orgs import OrgConfig
from restlake.demoapi.ratelimit import RateLimitConfig


class DemoApiConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig, description="Faults in force at start.")
    orgs: OrgConfig = Field(
        default_factory=OrgConfig, description="The repositories -> issues listings (parent -> child)."
    )
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    realtime: bool = Field(
        False, description="Advance one tick every dataset.tick_seconds of wall time (else only on request)."
    )
    max_page_size: int = Field(1000, ge=1, description="Larger page sizes are clamped to this.")
    access_log: bool = Field(False, description="Log every request (costs throughput).")


def realtime_growth(records_per_minute: float) -> tuple[int, float]:
    """(growth_per_tick, tick_seconds) giving exactly ``records_per_minute`` with ticks >= 1 s apart.

    Whole records per tick keep id -> creation tick a closed formula.
    """
    if records_per_minute <= 0:
        raise ValueError("records_per_minute must be > 0")
    per_tick = math.ceil(records_per_minute / 60)
    return per_tick, 60.0 * per_tick / records_per_minute
