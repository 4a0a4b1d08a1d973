"""OpenLineage run events as plain dicts: no client library, so the shape is exactly what is sent."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from restlake.lineage.datasets import PRODUCER, facet
from restlake.redaction import redact

EventType = Literal["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]
RUN_EVENT_SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ERROR_FACET_URL = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)


def new_run_id() -> str:
    # uuid7 sorts by time, which Marquez uses for ordering; Python 3.11 lacks it, uuid4 is still valid.
    return str(uuid.uuid4())


def run_event(
    event_type: EventType,
    *,
    run_id: str,
    job_namespace: str,
    job_name: str,
    inputs: Sequence[dict[str, Any]] = (),
    outputs: Sequence[dict[str, Any]] = (),
    error: str | None = None,
    event_time: datetime | None = None,
) -> dict[str, Any]:
    """One run event; ``error`` adds the errorMessage run facet (FAIL events)."""
    run: dict[str, Any] = {"runId": run_id}
    if error is not None:
        error = redact(error)
        run["facets"] = {"errorMessage": facet(ERROR_FACET_URL, message=error, programmingLanguage="python")}
    return {
        "eventType": event_type,
        "eventTime": (event_time or datetime.now(UTC)).isoformat(),
        "run": run,
        "job": {"namespace": job_namespace, "name": job_name},
        "inputs": [_redacted_dataset(d) for d in inputs],
        "outputs": [_redacted_dataset(d) for d in outputs],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
    }


def _redacted_dataset(found: dict[str, Any]) -> dict[str, Any]:
    # The dataset builders drop credentials by construction; this is the belt for a name or
    # namespace built from a connection string or URL they did not foresee.
    return {
        **found,
        "namespace": redact(str(found.get("namespace", ""))),
        "name": redact(str(found.get("name", ""))),
    }
