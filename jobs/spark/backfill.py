"""Backfill: replay a range of one source into Postgres, from its Kafka topic or its bronze table.

Kafka: the range is read as one Spark batch (``startingTimestamp``/``startingOffsets`` to
``endingTimestamp``/``endingOffsets``) and goes through the stream job's own validation, key dedupe
and quality gate. Bronze (``bronze_range``): a range of table versions or one snapshot, read by
Delta time travel; its rows passed those checks when the stream wrote them, so they go straight to
the merge, as the same ``MergeRow`` values (``batch.merge_rows``) the stream merged.

Either way the rows are merged in chunks through ``merge_batch``. Each run records its chunks in
the ledger under a query id of its own (``backfill-<run id>``), so a backfill never collides with
the stream's ledger rows; re-merging rows Postgres already holds changes nothing because the merge
only writes a row that is newer than the stored one. Bronze and quarantine are not written: they
already hold what the stream saw, and the stream's idempotent appends are keyed by its query.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.contracts.spec import IngestionSource
from restlake.errors import BackfillRangeError, ConfigError
from restlake.jobs.spark import bronze, quality
from restlake.jobs.spark.batch import merge_rows
from restlake.jobs.spark.bronze_range import BronzeRange, Snapshots, read_history, read_rows
from restlake.jobs.spark.config import StreamJobConfig
from restlake.jobs.spark.validation import PAYLOAD_VARIANT, REASON, validate
from restlake.postgres.merge import MergeRow, merge_batch

log = logging.getLogger(__name__)


def parse_offsets(text: str, *, option: str) -> dict[int, int]:
    """``0:120,1:95`` → ``{0: 120, 1: 95}``; the error names the option and the bad part."""
    offsets: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.isdigit() or not offset.lstrip("-").isdigit():
            raise ConfigError(f"{option}: expected partition:offset[,partition:offset…], got {part!r}")
        offsets[int(partition)] = int(offset)
    if not offsets:
        raise ConfigError(f"{option}: no partition:offset pair in {text!r}")
    return offsets


@dataclass(frozen=True)
class KafkaRange:
    """Where to start and stop; start by time or by offsets (exactly one), end exclusive, default latest."""

    from_time: datetime | None = None
    from_offsets: dict[int, int] | None = None
    to_time: datetime | None = None
    to_offsets: dict[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.from_time is None) == (self.from_offsets is None):
            raise BackfillRangeError("--from-time", "give exactly one of --from-time and --from-offsets")
        if self.to_time is not None and self.to_offsets is not None:
            raise BackfillRangeError("--to-time", "give at most one of --to-time and --to-offsets")

    def describe(self, topic: str) -> dict[str, object]:
        """The range as the summary shows it: the topic and the bounds that were given."""
        described: dict[str, object] = {"topic": topic}
        for name, when in (("from_time", self.from_time), ("to_time", self.to_time)):
            if when is not None:
                described[name] = when.isoformat()
        for name, offsets in (("from_offsets", self.from_offsets), ("to_offsets", self.to_offsets)):
            if offsets is not None:
                described[name] = {str(p): o for p, o in sorted(offsets.items())}
        return described

    def options(self, topic: str, partitions: list[int]) -> dict[str, str]:
        """Spark Kafka source options for ``topic`` with these ``partitions``.

        Spark wants every partition in an offsets map: the ones not named start at earliest (-2)
        and end at latest (-1).
        """
        opts: dict[str, str] = {}
        if self.from_time is not None:
            opts["startingTimestamp"] = str(_millis(self.from_time))
            # A partition with no record at or after the time has nothing to replay (not an error).
            opts["startingOffsetsByTimestampStrategy"] = "latest"
        elif self.from_offsets is not None:  # __post_init__ requires one of the two
            opts["startingOffsets"] = _offsets_json(topic, partitions, self.from_offsets, -2)
        if self.to_time is not None:
            opts["endingTimestamp"] = str(_millis(self.to_time))
        elif self.to_offsets is not None:
            opts["endingOffsets"] = _offsets_json(topic, partitions, self.to_offsets, -1)
        return opts


def _offsets_json(topic: str, partitions: list[int], given: dict[int, int], default: int) -> str:
    unknown = sorted(set(given) - set(partitions))
    if unknown:
        raise ConfigError(f"backfill: topic {topic} has partitions {partitions}, not {unknown}")
    return json.dumps({topic: {str(p): given.get(p, default) for p in partitions}})


def topic_partitions(bootstrap: str, topic: str, timeout: float = 15.0) -> list[int]:
    from confluent_kafka.admin import AdminClient

    from restlake.kafka_logging import client_config

    admin = AdminClient(client_config({"bootstrap.servers": bootstrap}, __name__))
    metadata = admin.list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise ConfigError(f"backfill: topic {topic} not found on {bootstrap}")
    return sorted(found.partitions)


def _millis(when: datetime) -> int:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def replay_range(
    *,
    from_time: datetime | None = None,
    from_offsets: dict[int, int] | None = None,
    to_time: datetime | None = None,
    to_offsets: dict[int, int] | None = None,
    from_version: int | None = None,
    to_version: int | None = None,
    as_of: int | datetime | None = None,
) -> KafkaRange | BronzeRange:
    """The CLI's range options → a Kafka range or a bronze one; any bronze option selects bronze."""
    kafka = [
        name
        for name, value in (
            ("--from-time", from_time),
            ("--from-offsets", from_offsets),
            ("--to-time", to_time),
            ("--to-offsets", to_offsets),
        )
        if value is not None
    ]
    bronze_given = [
        name
        for name, value in (
            ("--from-version", from_version),
            ("--to-version", to_version),
            ("--as-of", as_of),
        )
        if value is not None
    ]
    if bronze_given and kafka:
        raise BackfillRangeError(
            bronze_given[0],
            f"reads bronze, {kafka[0]} reads Kafka: a backfill reads one origin; drop "
            f"{', '.join(kafka)} or {', '.join(bronze_given)}",
        )
    if bronze_given:
        return BronzeRange(from_version=from_version, to_version=to_version, as_of=as_of)
    if not kafka:
        raise BackfillRangeError(
            "--from-time",
            "give where to start: --from-time or --from-offsets (Kafka), "
            "or --from-version or --as-of (bronze)",
        )
    return KafkaRange(from_time=from_time, from_offsets=from_offsets, to_time=to_time, to_offsets=to_offsets)


@dataclass(frozen=True)
class BackfillSummary:
    """What one backfill did; ``origin`` is kafka or bronze, ``range`` what was read (bronze: resolved)."""

    origin: str
    source: str
    range: dict[str, object]
    topic: str | None
    query_id: str
    rows_read: int
    rows_invalid: int
    rows_duplicate: int
    rows_dropped: int
    rows_merged_in: int
    inserted: int
    updated: int
    unchanged: int
    chunks: int
    duration_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def read_range(spark: SparkSession, cfg: StreamJobConfig, krange: KafkaRange) -> DataFrame:
    if cfg.topic is None:
        raise ConfigError(f"backfill of {cfg.source}: needs a topic, the stream subscribes to a pattern")
    return (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", cfg.kafka_bootstrap)
        .option("subscribe", cfg.topic)
        .options(**krange.options(cfg.topic, topic_partitions(cfg.kafka_bootstrap, cfg.topic)))
        .load()
    )


def _chunks(rows: Iterator[MergeRow], size: int) -> Iterator[list[MergeRow]]:
    chunk: list[MergeRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass(frozen=True)
class _Selected:
    """The rows a backfill merges, and what reading them counted."""

    rows: DataFrame
    total: int
    rows_read: int
    rows_invalid: int = 0
    rows_duplicate: int = 0
    rows_dropped: int = 0


def _select_kafka(
    spark: SparkSession, cfg: StreamJobConfig, krange: KafkaRange, cached: list[DataFrame]
) -> _Selected:
    validated = validate(
        read_range(spark, cfg, krange),
        source=cfg.source,
        json_schema=cfg.json_schema,
        max_message_bytes=cfg.max_message_bytes,
    ).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(validated)
    rows_read = validated.count()
    passed = validated.where(F.col(REASON).isNull()).count()
    # The same key twice on the topic (a refetch of an unchanged record) is one record.
    valid = bronze.dedupe_by_key(validated.where(F.col(REASON).isNull()))
    valid = valid.persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(valid)
    valid_rows = valid.count()
    dropped = 0
    # The same gate as the stream, so a backfill never loads what the stream kept out.
    if cfg.quality is not None and cfg.quality.expectations:
        gate = quality.check(valid, cfg.quality, payload_variant=PAYLOAD_VARIANT)
        cached.append(gate.cached)
        if gate.violations and cfg.quality.on_violation == "fail":
            raise quality.ExpectationFailed(cfg.source, -1, gate.violations, gate.rows)
        checked = gate.checked
        if cfg.quality.on_violation == "drop":
            kept = checked.where(F.col(quality.EXPECTATION).isNull())
            dropped = valid_rows - kept.count()
            checked = kept
        valid = checked.drop(quality.EXPECTATION)
    return _Selected(
        rows=valid,
        total=valid_rows - dropped,
        rows_read=rows_read,
        rows_invalid=rows_read - passed,
        rows_duplicate=passed - valid_rows,
        rows_dropped=dropped,
    )


def _select_bronze(
    spark: SparkSession, cfg: StreamJobConfig, snapshots: Snapshots, option: str, cached: list[DataFrame]
) -> _Selected:
    # Bronze already holds one row per key of records that passed validation and the gate.
    rows = read_rows(spark, snapshots, source=cfg.source, option=option).persist(StorageLevel.MEMORY_AND_DISK)
    cached.append(rows)
    count = rows.count()
    return _Selected(rows=rows, total=count, rows_read=count)


def run_backfill(
    spark: SparkSession,
    cfg: StreamJobConfig,
    replay: KafkaRange | BronzeRange,
    *,
    run_id: str | None = None,
    chunk_rows: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> BackfillSummary:
    """Replay ``replay`` into Postgres; ``progress(done, total)`` after each merged chunk."""
    if not cfg.postgres_enabled:
        raise ConfigError(
            f"backfill of {cfg.source}: sinks.postgres.enabled is false, and a backfill replays into "
            "Postgres; enable the sink first"
        )
    if isinstance(replay, BronzeRange) and not cfg.bronze_enabled:
        raise ConfigError(
            f"backfill of {cfg.source}: sinks.bronze.enabled is false, so there is no bronze history to "
            "replay; replay a Kafka range (--from-offsets or --from-time) instead"
        )
    started = time.monotonic()
    query_id = f"backfill-{run_id or uuid.uuid4().hex}"
    cached: list[DataFrame] = []
    try:
        if isinstance(replay, BronzeRange):
            # Resolved before anything is read, so a bad range fails fast and the summary names the
            # snapshots actually read, not the ones asked for.
            snapshots = replay.resolve(read_history(spark, cfg.bronze_path, replay))
            described = snapshots.described
            selected = _select_bronze(spark, cfg, snapshots, replay.option, cached)
        else:
            described = replay.describe(cfg.topic or "")
            selected = _select_kafka(spark, cfg, replay, cached)
        inserted = updated = distinct = done = chunks = 0
        for chunk_id, chunk in enumerate(_chunks(merge_rows(selected.rows), chunk_rows)):
            result = merge_batch(
                cfg.pg_dsn,
                table=cfg.table,
                source=cfg.source,
                query_id=query_id,
                batch_id=chunk_id,
                rows=chunk,
            )
            inserted, updated = inserted + result.inserted, updated + result.updated
            distinct += result.rows_distinct
            done += len(chunk)
            chunks += 1
            if progress is not None:
                progress(done, selected.total)
    finally:
        for df in cached:
            df.unpersist()
    summary = BackfillSummary(
        origin="bronze" if isinstance(replay, BronzeRange) else "kafka",
        source=cfg.source,
        range=described,
        topic=None if isinstance(replay, BronzeRange) else cfg.topic,
        query_id=query_id,
        rows_read=selected.rows_read,
        rows_invalid=selected.rows_invalid,
        rows_duplicate=selected.rows_duplicate,
        rows_dropped=selected.rows_dropped,
        rows_merged_in=done,
        inserted=inserted,
        updated=updated,
        unchanged=distinct - inserted - updated,
        chunks=chunks,
        duration_s=round(time.monotonic() - started, 3),
    )
    log.info("backfill done %s", json.dumps(summary.as_dict(), sort_keys=True))
    return summary


def config_for(
    source: IngestionSource, *, kafka_bootstrap: str, topic: str, pg_dsn: str, lake_root: str
) -> StreamJobConfig:
    """The stream job's config for ``source``: the backfill validates and gates exactly as the stream."""
    return StreamJobConfig.for_source(
        source, kafka_bootstrap=kafka_bootstrap, topic=topic, lake_root=lake_root, pg_dsn=pg_dsn
    )
