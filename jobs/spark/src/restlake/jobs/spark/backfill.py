"""Backfill: replay a range of one source into Postgres, from its Kafka topic or its bronze table.

Kafka: the range is read as one Spark batch (``startingTimestamp``/``startingOffsets`` to
``endingTimestamp``/``endingOffsets``) and goes through the stream job's own validation, key dedupe
and quality gate. Bronze (``bronze_range``): a range of table versions or one snapshot, read by
Delta time travel; its rows passed those checks when the stream wrote them, so they go straight to
the merge.

Either way the rows are merged in chunks (``backfill_chunks``), each staged as the stream stages a
micro-batch: COPYed by the executors into a staging table of the backfill's own, or, where they
cannot reach Postgres, collected as Arrow and COPYed by the driver. Each run records its chunks in
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import psycopg
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.contracts.spec import IngestionSource
from restlake.contracts.stream_job import DEFAULT_MAX_RECORDS_PER_BATCH, StreamJobConfig
from restlake.errors import BackfillRangeError, ConfigError
from restlake.jobs.spark import backfill_chunks, bronze, postgres_copy, quality
from restlake.jobs.spark.bronze_range import BronzeRange, Snapshots, read_history, read_rows
from restlake.jobs.spark.postgres_copy import JdbcTarget, merged_from_executors
from restlake.jobs.spark.validation import PAYLOAD_VARIANT, REASON, validate
from restlake.postgres import backfill_ranges, migrations
from restlake.postgres.arrow_stage import ARROW_COLUMNS, arrow_stager
from restlake.postgres.merge import MergeResult, Staged, Stager, merge_staged, merged_batches
from restlake.postgres.partition_stage import PartitionStage, backfill_claim, version_readings

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


def watermarks(bootstrap: str, topic: str, timeout: float = 15.0) -> dict[int, tuple[int, int]]:
    """Each partition's first and end offsets now (its low and high watermarks). The end offset is
    what Spark's ``endingOffsets`` "latest" would read up to (neither side reads with read_committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from restlake.kafka_logging import client_config

    partitions = topic_partitions(bootstrap, topic, timeout)
    consumer = Consumer(
        client_config(
            {
                "bootstrap.servers": bootstrap,
                # Never subscribes nor commits: the group only satisfies the client.
                "group.id": "restlake-backfill-range",
                "enable.auto.commit": False,
            },
            __name__,
        )
    )
    try:
        found = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            found[p] = (int(low), int(high))
        return found
    finally:
        consumer.close()


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
    chunk_rows: int = DEFAULT_MAX_RECORDS_PER_BATCH,
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
    # The ledger and the pinned ranges live in raw.*: a backfill may run before any stream of this
    # version has migrated the database.
    migrations.apply(cfg.pg_dsn)
    cached: list[DataFrame] = []
    try:
        if isinstance(replay, BronzeRange):
            # Resolved before anything is read, so a bad range fails fast and the summary names the
            # snapshots actually read, not the ones asked for.
            history = read_history(spark, cfg.bronze_path, replay)
            snapshots = _pin_bronze_end(cfg, replay, query_id, history.latest.version).resolve(history)
            described = snapshots.described
            selected = _select_bronze(spark, cfg, snapshots, replay.option, cached)
        else:
            replay = _pin_kafka_end(cfg, replay, query_id)
            described = replay.describe(cfg.topic or "")
            selected = _select_kafka(spark, cfg, replay, cached)
        with backfill_claim(cfg.pg_dsn, cfg.source):
            merged = _merge_chunks(spark, cfg, selected, query_id, chunk_rows, progress)
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
        rows_merged_in=merged.rows,
        inserted=merged.inserted,
        updated=merged.updated,
        unchanged=merged.distinct - merged.inserted - merged.updated,
        chunks=merged.chunks,
        duration_s=round(time.monotonic() - started, 3),
    )
    log.info("backfill done %s", json.dumps(summary.as_dict(), sort_keys=True))
    return summary


def _pin_kafka_end(cfg: StreamJobConfig, replay: KafkaRange, query_id: str) -> KafkaRange:
    """A range open at the end ("latest") ends at the topic's end offsets of the run's first start."""
    topic = cfg.topic
    if replay.to_time is not None or replay.to_offsets is not None or topic is None:
        return replay
    # Read once: the pin of a first start, and the partitions added since the pin of a resumed one.
    marks = watermarks(cfg.kafka_bootstrap, topic)
    pin = backfill_ranges.pinned(
        cfg.pg_dsn,
        source=cfg.source,
        query_id=query_id,
        resolve=lambda: {"topic": topic, "to_offsets": {str(p): high for p, (_, high) in marks.items()}},
    )
    to_offsets = {int(p): int(o) for p, o in pin["to_offsets"].items()}
    # A partition added to the topic since the pin held nothing then: it ends where it starts, or a
    # resumed run would read it to "latest" and no longer be the range its first start saw.
    added = {p: low for p, (low, _) in marks.items() if p not in to_offsets}
    if added:
        log.info(
            "backfill: partitions %s added since the range was pinned; nothing read of them", sorted(added)
        )
    return replace(replay, to_offsets={**to_offsets, **added})


def _pin_bronze_end(cfg: StreamJobConfig, replay: BronzeRange, query_id: str, latest: int) -> BronzeRange:
    """A version range open at the end ends at the table's newest version of the run's first start."""
    if replay.from_version is None or replay.to_version is not None or replay.from_version > latest:
        return replay  # the last: resolve() says the version is past the table's newest
    pin = backfill_ranges.pinned(
        cfg.pg_dsn, source=cfg.source, query_id=query_id, resolve=lambda: {"to_version": latest}
    )
    return replace(replay, to_version=int(pin["to_version"]))


@dataclass
class _Merged:
    rows: int = 0
    distinct: int = 0
    inserted: int = 0
    updated: int = 0
    chunks: int = 0


def _merge_chunks(
    spark: SparkSession,
    cfg: StreamJobConfig,
    selected: _Selected,
    query_id: str,
    chunk_rows: int,
    progress: Callable[[int, int], None] | None,
) -> _Merged:
    target = postgres_copy.jdbc_target(cfg.pg_dsn) if postgres_copy.available(spark) else None
    rows = backfill_chunks.bucketed(selected.rows, selected.total, chunk_rows)
    chunks = backfill_chunks.plan(backfill_chunks.bucket_counts(rows), chunk_rows)
    _check_resumable(cfg, query_id, chunks)
    merged = _Merged()
    for chunk_id, chunk in enumerate(chunks):
        chunk_rows_df = backfill_chunks.rows_of(rows, chunk)
        if target is not None:
            result = _merge_from_executors(cfg, chunk_rows_df, chunk, target, query_id, chunk_id)
        else:
            result = _merge(cfg, query_id, chunk_id, _collected(cfg, chunk_rows_df, chunk_id))
        merged.inserted += result.inserted
        merged.updated += result.updated
        merged.distinct += result.rows_distinct
        merged.rows += chunk.rows
        merged.chunks += 1
        if progress is not None:
            progress(merged.rows, selected.total)
    return merged


def _check_resumable(cfg: StreamJobConfig, query_id: str, chunks: list[backfill_chunks.Chunk]) -> None:
    """A run id reused to resume must cut the same chunks, or the ledger would skip chunks that hold
    other rows than the ones it merged: refuse a range that changed (other bounds or --chunk-rows;
    an end at "latest" was pinned at the run's first start, so a grown topic or table is not one)."""
    for chunk_id, rows_in in sorted(merged_batches(cfg.pg_dsn, source=cfg.source, query_id=query_id).items()):
        now = chunks[chunk_id].rows if chunk_id < len(chunks) else 0
        if now != rows_in:
            raise ConfigError(
                f"backfill of {cfg.source}: run {query_id} merged {rows_in} rows in chunk {chunk_id}, and "
                f"this range cuts {now} rows there: the range or --chunk-rows changed since that run; "
                "resume with the same range and --chunk-rows, or start a new run id"
            )


def _merge_from_executors(
    cfg: StreamJobConfig,
    rows: DataFrame,
    chunk: backfill_chunks.Chunk,
    target: JdbcTarget,
    query_id: str,
    chunk_id: int,
) -> MergeResult:
    return merged_from_executors(
        lambda staged: _merge(cfg, query_id, chunk_id, staged),
        rows,
        target,
        cfg.pg_dsn,
        PartitionStage.new(cfg.source, owner="backfill"),
        batch_id=chunk_id,
        rows=chunk.rows,
        keys=chunk.keys,
        versions=lambda: version_readings(rows.select(F.col("version").cast("string")).toArrow()["version"]),
    )


def _collected(cfg: StreamJobConfig, rows: DataFrame, chunk_id: int) -> Stager:
    """Collect the chunk as Arrow inside the merge transaction, so a merged chunk is not collected."""

    def stage(conn: psycopg.Connection) -> Staged:
        return arrow_stager(rows.select(*ARROW_COLUMNS).toArrow(), source=cfg.source, batch_id=chunk_id)(conn)

    return stage


def _merge(cfg: StreamJobConfig, query_id: str, chunk_id: int, stage: Stager) -> MergeResult:
    return merge_staged(
        cfg.pg_dsn, table=cfg.table, source=cfg.source, query_id=query_id, batch_id=chunk_id, stage=stage
    )


def config_for(
    source: IngestionSource, *, kafka_bootstrap: str, topic: str, pg_dsn: str, lake_root: str
) -> StreamJobConfig:
    """The stream job's config for ``source``: the backfill validates and gates exactly as the stream."""
    return StreamJobConfig.for_source(
        source, kafka_bootstrap=kafka_bootstrap, topic=topic, lake_root=lake_root, pg_dsn=pg_dsn
    )
