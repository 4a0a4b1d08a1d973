"""The Kubernetes object metadata and status conditions the contracts' resources share."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, model_validator

from restlake.contracts.model import SpecModel
from restlake.contracts.patterns import CONDITION_REASON, DNS1123_LABEL

# Fields the API server fills in; accepted (and dropped) so `kubectl get -o yaml` output parses.
_SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "selfLink",
        "generateName",
    }
)


class ObjectMeta(SpecModel):
    """The part of Kubernetes object metadata a source uses."""

    name: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Source name; names the Kafka topic and Kubernetes objects.",
    )
    namespace: str | None = Field(
        None, max_length=63, pattern=DNS1123_LABEL, description="Kubernetes namespace."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Kubernetes annotations.")

    @model_validator(mode="before")
    @classmethod
    def _drop_server_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _SERVER_METADATA}
        return data


class Condition(SpecModel):
    """One aspect of the source's state (Kubernetes condition conventions)."""

    type: str = Field(
        max_length=64,
        pattern=CONDITION_REASON,
        description="Condition type: Ready, FetcherReady, StreamReady or QualityPassing.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str | None = Field(
        None, max_length=128, pattern=CONDITION_REASON, description="Why it last changed, one CamelCase word."
    )
    message: str | None = Field(
        None, max_length=4096, description="Human-readable detail of the last change."
    )
    last_transition_time: dt.datetime | None = Field(None, description="When status last changed (UTC).")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the condition was computed from."
    )
