"""Run events of one stream micro-batch: input the topic, outputs bronze, quarantine and Postgres."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from restlake.lineage.datasets import (
    BRONZE_FIELDS,
    POSTGRES_FIELDS,
    QUARANTINE_FIELDS,
    FieldMapping,
    column_lineage,
    delta_table,
    kafka_topic,
    output_statistics,
    postgres_table,
)
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.events import EventType, new_run_id, run_event


def stream_job_name(source: str) -> str:
    return f"restlake.stream.{source}"


@dataclass(frozen=True)
class StreamTargets:
    """Where one source's stream job reads and writes; ``pg_dsn`` is reduced to host, port and db."""

    source: str
    kafka_bootstrap: str
    topic: str
    bronze_uri: str
    quarantine_uri: str
    pg_dsn: str
    pg_table: str = "raw.api_events"
    # (bronze column, type) of the typed columns the source's schema declares.
    typed_columns: tuple[tuple[str, str], ...] = ()
    # The sinks the spec enables; a sink that is off is no output of the job.
    sinks: frozenset[str] = frozenset({"bronze", "quarantine", "postgres"})


@dataclass(frozen=True)
class BatchCounts:
    bronze_rows: int
    quarantine_rows: int
    postgres_rows: int


_ENVELOPE = tuple(name for name, _ in BRONZE_FIELDS)
# Postgres columns fed by one envelope field each; id, updated_at and the ledger columns are the
# merge's own. pulled_at is the fetch time under the seed's historical name.
_POSTGRES_FROM_ENVELOPE: tuple[FieldMapping, ...] = (
    ("source", "source", "IDENTITY"),
    ("external_id", "external_id", "IDENTITY"),
    ("payload", "payload", "TRANSFORMATION"),
    ("pulled_at", "fetched_at", "IDENTITY"),
    ("content_hash", "content_hash", "IDENTITY"),
    ("version", "version", "IDENTITY"),
    ("fetched_at", "fetched_at", "IDENTITY"),
    ("idempotency_key", "idempotency_key", "IDENTITY"),
)


def _bronze_lineage(targets: StreamTargets) -> list[FieldMapping]:
    copied = [(name, name, "IDENTITY") for name in _ENVELOPE]
    # The typed columns are the payload's properties cast to the schema's type.
    return copied + [(column, "payload", "TRANSFORMATION") for column, _ in targets.typed_columns]


def stream_batch_events(
    namespace: str,
    targets: StreamTargets,
    event_type: EventType,
    *,
    run_id: str,
    counts: BatchCounts | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One event of a micro-batch run; ``counts`` become outputStatistics on each output."""
    topic = kafka_topic(targets.kafka_bootstrap, targets.topic, BRONZE_FIELDS)
    outputs: list[dict[str, Any]] = []
    lineage = {
        "bronze": (
            delta_table(targets.bronze_uri, BRONZE_FIELDS + targets.typed_columns),
            _bronze_lineage(targets),
        ),
        "quarantine": (
            delta_table(targets.quarantine_uri, QUARANTINE_FIELDS),
            [(n, n, "IDENTITY") for n in _ENVELOPE],
        ),
        "postgres": (
            postgres_table(targets.pg_dsn, targets.pg_table, POSTGRES_FIELDS),
            _POSTGRES_FROM_ENVELOPE,
        ),
    }
    rows = (
        {"bronze": counts.bronze_rows, "quarantine": counts.quarantine_rows, "postgres": counts.postgres_rows}
        if counts is not None
        else None
    )
    for sink, (output, mappings) in lineage.items():
        if sink not in targets.sinks:
            continue
        output.setdefault("facets", {})["columnLineage"] = column_lineage(topic, mappings)
        if rows is not None:
            output["outputFacets"] = {"outputStatistics": output_statistics(rows[sink])}
        outputs.append(output)
    return run_event(
        event_type,
        run_id=run_id,
        job_namespace=namespace,
        job_name=stream_job_name(targets.source),
        inputs=[topic],
        outputs=outputs,
        error=error,
    )


def emit_stream_batch(
    emitter: LineageEmitter,
    targets: StreamTargets,
    counts: BatchCounts | None,
    *,
    error: str | None = None,
) -> str:
    """Emit START then COMPLETE (or FAIL with ``error``) for one finished micro-batch; returns the run id.

    Called by the stream job after the batch committed (or failed), so the pair is sent together:
    a batch takes seconds, and emitting START earlier would add a network call to the hot path.
    """
    run_id = new_run_id()
    ns = emitter.namespace
    emitter.emit(stream_batch_events(ns, targets, "START", run_id=run_id))
    final: EventType = "FAIL" if error is not None else "COMPLETE"
    emitter.emit(stream_batch_events(ns, targets, final, run_id=run_id, counts=counts, error=error))
    return run_id
