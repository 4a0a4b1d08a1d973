"""``status`` of an IngestionSource: what the operator observed."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from restlake.contracts.metadata import Condition
from restlake.contracts.model import SpecModel


class IngestionSourceStatus(SpecModel):
    """What the operator observed; written only by the operator."""

    phase: Literal["Pending", "Provisioning", "Running", "Degraded", "Paused", "Failed"] | None = Field(
        None,
        description='Summary of the conditions; Paused while restlake.io/pause-reconciliation is "true".',
    )
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Conditions: Ready, FetcherReady, StreamReady, TopicReady, CredentialsAllowed, "
        "ParentResolved, SchemaCompatible, QualityPassing, ReconciliationPaused.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_fetch_time: dt.datetime | None = Field(None, description="When the last page was fetched (UTC).")
    events_produced: int | None = Field(None, ge=0, description="Records published to Kafka, in total.")
    consumer_lag: int | None = Field(
        None, ge=0, description="Kafka messages not yet processed by the stream job."
    )
