"""Where a validated micro-batch lands: the quarantine and bronze Delta tables and Postgres.

Each sink is one class: ``prepare`` creates what it writes (idempotently, before the query
starts) and ``write`` lands one micro-batch, a no-op when the batch is a replay. Only the sinks
the spec enables (``sinks.<name>.enabled``) are built. ``BatchProcessor`` runs the lake sinks one
after the other on the driver and the sinks with ``commits_after_lake`` beside them; those call
``MicroBatch.lake_committed()`` before their commit, so Postgres never holds a batch that bronze
does not. A new sink is a class here, a field in the spec and its toggle in ``StreamJobConfig``.
A sink loaded from bronze rather than per micro-batch (``sinks.snowflake``) is not a class here:
it has its own config beside ``StreamJobConfig`` (``contracts.snowflake_sync``) and its own job
(``snowflake_sync``), so a warehouse outage never stops the stream.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import ConfigError, TransientError
from restlake.jobs.spark import bronze, bronze_commits, faults, postgres_copy
from restlake.jobs.spark.bronze_keys import (
    KEY,
    ensure_seeded,
    first_per_key,
    select_new,
    table_state,
)
from restlake.jobs.spark.compaction import StreamCompaction
from restlake.jobs.spark.delta_log import delta_log_snapshot, snapshot_partition_columns
from restlake.jobs.spark.postgres_copy import JdbcTarget, merged_from_executors
from restlake.jobs.spark.typed_columns import TypedColumn
from restlake.postgres import bronze_keys as ledger
from restlake.postgres import migrations
from restlake.postgres.arrow_stage import ARROW_COLUMNS, arrow_stager
from restlake.postgres.merge import MergeResult, Staged, Stager, merge_staged
from restlake.postgres.partition_stage import PartitionStage, drop_orphans, version_readings

log = logging.getLogger(__name__)

# Retries of a merge that failed transiently (Postgres restarting, a serialization failure);
# safe because the ledger makes a merge that did commit a no-op. Delays in seconds: 30 s in all,
# enough for a Postgres restart or a managed failover; beyond that the batch fails and the query
# stops, and its restart replays the batch from the checkpoint.
MERGE_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)
# The Postgres sink collects a micro-batch's valid rows into the driver as Arrow to COPY them. A
# batch is capped in records, not bytes, so 100,000 records of 7 KB (real APIs have them) would be
# 700 MB held at once, in the JVM while Spark serialises it and in Python after: measured, a 2 GiB
# driver died of it. Beyond this many bytes the rows are collected and COPYed in slices by key
# instead, each its own Spark job over the cached batch, so the driver holds at most about this
# much whatever the records' size. 64 MB, not 128: a default batch of 100,000 records of ~1 KB
# is then two slices, so the driver's Python process holds half as much, for one more Spark job
# over the cached batch (`restlake run` of 1M records on 2 cores: same wall time, measured).
COLLECT_SLICE_BYTES = 64 * 1024 * 1024
# What a row holds besides its payload (key, hashes, version, topic, timestamps), for the estimate.
_ROW_OVERHEAD_BYTES = 256


@dataclass(frozen=True)
class MicroBatch:
    """One micro-batch as the sinks see it, after validation and the quality gate."""

    spark: SparkSession
    batch_id: int
    query_id: str
    app_id: str
    valid: DataFrame
    rejected: DataFrame
    rejected_rows: int
    # Key (md5 of idempotency_key), kafka_partition and kafka_offset of every valid row, as Arrow.
    keys: pa.Table
    # Bytes of the valid rows' payload text: how much a sink that collects the rows will hold.
    valid_payload_bytes: int
    # Blocks until the lake sinks have committed this batch; raises if one of them failed.
    lake_committed: Callable[[], None]

    @property
    def has_duplicate_keys(self) -> bool:
        return bool(pc.count_distinct(self.keys[KEY]).as_py() < self.keys.num_rows)


@dataclass(frozen=True)
class Written:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    replayed: bool = False
    # Seconds of the sink's own steps, in order (logged with the batch as ``<sink>.<step>``): what a
    # profile of a slow batch needs first, and what the drain benchmark reports.
    steps: tuple[tuple[str, float], ...] = ()


class Stopwatch:
    """Laps of named steps on the monotonic clock."""

    def __init__(self) -> None:
        self.laps: list[tuple[str, float]] = []
        self._mark = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append((name, now - self._mark))
        self._mark = now


class Sink(Protocol):
    name: str
    # True: runs beside the lake sinks and commits only after them (a table fed from the batch).
    commits_after_lake: bool

    def prepare(self, spark: SparkSession) -> None:
        """Create what the sink writes, before the query starts. Driver-side work only: a Spark job
        here waits for executors, and a restarted driver whose predecessor's executors still hold
        the cluster's cores would wait past its liveness probe."""
        ...

    def write(self, batch: MicroBatch) -> Written: ...


class QuarantineSink:
    """Rejected records with their reason and Kafka coordinates, appended to a Delta table."""

    name = "quarantine"
    commits_after_lake = False

    def __init__(self, config: StreamJobConfig) -> None:
        self.config = config
        self.compaction = StreamCompaction(config.quarantine_path, source=config.source, kind=self.name)

    def prepare(self, spark: SparkSession) -> None:
        bronze.ensure_table(spark, self.config.quarantine_path, bronze.QUARANTINE_SCHEMA)
        self.compaction.start(spark)

    def write(self, batch: MicroBatch) -> Written:
        if batch.rejected_rows:
            rows = bronze.quarantine_rows(batch.rejected, source=self.config.source, batch_id=batch.batch_id)
            bronze.append(
                rows, path=self.config.quarantine_path, app_id=batch.app_id, batch_id=batch.batch_id
            )
            self.compaction.appended(batch.spark)
        return Written(rows=batch.rejected_rows)


class BronzeSink:
    """One row per record version, appended once: new keys come from the key ledger in Postgres."""

    name = "bronze"
    commits_after_lake = False

    def __init__(self, config: StreamJobConfig, typed: list[TypedColumn]) -> None:
        self.config = config
        self.typed = typed
        self._table_id: str | None = None
        self._properties_checked = False
        self.compaction = StreamCompaction(config.bronze_path, source=config.source, kind=self.name)

    def prepare(self, spark: SparkSession) -> None:
        cfg = self.config
        schema = bronze.bronze_schema(self.typed)
        check_partition_columns(schema.fieldNames(), cfg.partition_by)
        existing = _partition_columns(spark, cfg.bronze_path)
        if existing is not None and tuple(existing) != tuple(cfg.partition_by):
            raise ConfigError(
                f"spec.sinks.bronze.partitionBy is {list(cfg.partition_by)} but the bronze table at "
                f"{cfg.bronze_path} is partitioned by {existing}; Delta cannot repartition a table in "
                "place: keep the table's columns, or point sinks.bronze.path at a new table"
            )
        bronze.ensure_table(
            spark,
            cfg.bronze_path,
            schema,
            partition_by=cfg.partition_by,
            stats_columns=bronze.stats_columns(schema, cfg.partition_by),
        )
        self.table_id(spark)
        self.compaction.start(spark)

    def table_id(self, spark: SparkSession) -> str:
        """The table's Delta id, and its key ledger seeded for this source (once per query)."""
        if self._table_id is None:
            state = table_state(spark, self.config.bronze_path)
            ensure_seeded(
                spark,
                self.config.pg_dsn,
                path=self.config.bronze_path,
                table=state,
                source=self.config.source,
            )
            self._table_id = state.id
        return self._table_id

    def write(self, batch: MicroBatch) -> Written:
        cfg = self.config
        watch = Stopwatch()
        table_id = self.table_id(batch.spark)
        selection = select_new(
            batch.spark,
            cfg.pg_dsn,
            batch.keys,
            path=cfg.bronze_path,
            table=table_id,
            source=cfg.source,
            query_id=batch.query_id,
            batch_id=batch.batch_id,
        )
        watch.lap("claim")
        faults.after_bronze_claim(batch.batch_id)
        if selection.rows:
            bronze.append(
                bronze.bronze_rows(selection.apply(batch.spark, batch.valid), batch.batch_id, self.typed),
                path=cfg.bronze_path,
                # No txnAppId: a replay is caught by the key ledger (select_new), at no cost per batch.
                app_id=None,
                batch_id=batch.batch_id,
                # Always: typed columns a schema change adds, and the envelope's nullable additions
                # (the `parent` column, the request struct's `line`), which bronze tables created
                # before them lack. Only additions merge; a changed type still fails the write.
                merge_schema=True,
                rows_hint=selection.rows,
                # A replay of this batch reads it back to know whether this append landed.
                user_metadata=bronze_commits.tag(batch.query_id, batch.batch_id),
            )
        watch.lap("append")
        if selection.rows and not self._properties_checked:
            self._properties_checked = True
            keep_table_properties_current(batch.spark, cfg.bronze_path)
        if selection.rows:
            # After the properties check: a compaction that overlaps a metadata commit fails.
            self.compaction.appended(batch.spark)
        faults.before_bronze_confirm(batch.batch_id)
        ledger.confirm(cfg.pg_dsn, table_id=table_id, query_id=batch.query_id, batch_id=batch.batch_id)
        watch.lap("confirm")
        return Written(rows=selection.rows, steps=tuple(watch.laps))


class PostgresSink:
    """The newest version of every record upserted into the source's table, exactly once per batch.

    The executors COPY a batch's rows into a staging table (``postgres_copy``) and the driver
    merges it; where that path is not available, the driver collects the rows as Arrow and COPYs
    them itself."""

    name = "postgres"
    commits_after_lake = True

    def __init__(self, config: StreamJobConfig) -> None:
        self.config = config
        self.target: JdbcTarget | None = None

    def prepare(self, spark: SparkSession) -> None:
        # raw.* is migrated by the query's start, before any sink prepares.
        migrations.ensure_table(self.config.pg_dsn, self.config.table)
        if postgres_copy.available(spark):
            self.target = postgres_copy.jdbc_target(self.config.pg_dsn)
        if self.target is not None:
            drop_orphans(self.config.pg_dsn, self.config.source)

    def write(self, batch: MicroBatch) -> Written:
        # A batch holding one record twice keeps the first per key, which the Arrow path applies.
        if self.target is not None and not batch.has_duplicate_keys:
            return self._write_from_executors(batch, self.target)
        return self._write_collected(batch)

    def _write_from_executors(self, batch: MicroBatch, target: JdbcTarget) -> Written:
        cfg = self.config
        watch = Stopwatch()
        rows = batch.keys.num_rows
        keys = int(pc.count_distinct(batch.keys["external_id"]).as_py() or 0)
        staging: list[float] = []
        waited: list[float] = []
        # Parsed in Python while the executors stage the rows (this thread waits on the JVM then),
        # not after them: 0.3-0.7 s of every 100,000-row batch came off its critical path.
        readings = _on_thread(
            f"versions-{cfg.source}-{batch.batch_id}", version_readings, batch.keys["version"]
        )

        def attempt() -> MergeResult:
            return merged_from_executors(
                lambda staged: self._merge(batch, staged, waited),
                batch.valid,
                target,
                cfg.pg_dsn,
                PartitionStage.new(cfg.source),
                batch_id=batch.batch_id,
                rows=rows,
                keys=keys,
                versions=readings.result,
                staging=staging,
            )

        merged = self._retrying(batch, attempt)
        _merge_laps(watch, inside=sum(staging), waited=waited)
        watch.laps[:0] = [("stage", sum(staging))]
        return _written(merged, tuple(watch.laps))

    def _write_collected(self, batch: MicroBatch) -> Written:
        cfg = self.config
        watch = Stopwatch()
        slices = collect_slices(batch.valid_payload_bytes, batch.keys.num_rows)
        collected: pa.Table | None = None
        if slices == 1:
            # Collected once, as Arrow; a retry re-sends the same rows without another Spark job.
            collected = self._collect(batch, slices, 0)
        watch.lap("collect")
        collecting: list[float] = []
        waited: list[float] = []

        def stage(conn: Any) -> Staged:
            if collected is not None:
                return arrow_stager(collected, source=cfg.source, batch_id=batch.batch_id)(conn)
            staged = Staged(0, 0)
            for index in range(slices):
                started = time.monotonic()
                rows = self._collect(batch, slices, index)
                collecting.append(time.monotonic() - started)
                part = arrow_stager(rows, source=cfg.source, batch_id=batch.batch_id)(conn)
                del rows  # the slice's rows are in Postgres: the next one must not sit beside them
                # Slices are disjoint by external_id, so their distinct keys add up.
                staged = Staged(staged.rows + part.rows, staged.keys + part.keys)
            return staged

        merged = self._retrying(batch, lambda: self._merge(batch, stage, waited))
        _merge_laps(watch, inside=sum(collecting), waited=waited)
        if collecting:
            watch.laps[0] = ("collect", watch.laps[0][1] + sum(collecting))
        return _written(merged, tuple(watch.laps))

    def _merge(self, batch: MicroBatch, stage: Stager, waited: list[float]) -> MergeResult:
        def lake_committed() -> None:
            started = time.monotonic()
            try:
                batch.lake_committed()
            finally:
                waited.append(time.monotonic() - started)

        cfg = self.config
        return merge_staged(
            cfg.pg_dsn,
            table=cfg.table,
            source=cfg.source,
            query_id=batch.query_id,
            batch_id=batch.batch_id,
            stage=stage,
            before_commit=lake_committed,
        )

    def _retrying(self, batch: MicroBatch, attempt: Callable[[], MergeResult]) -> MergeResult:
        attempts = len(MERGE_RETRY_DELAYS) + 1
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except TransientError as exc:
                if number == attempts:
                    raise
                delay = MERGE_RETRY_DELAYS[number - 1]
                log.warning(
                    "merge failed transiently, retrying source=%s batch_id=%s attempt=%s delay_s=%s error=%s",
                    self.config.source,
                    batch.batch_id,
                    number,
                    delay,
                    exc,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _collect(batch: MicroBatch, slices: int, index: int) -> pa.Table:
        valid = batch.valid
        if slices > 1:
            valid = valid.where(F.pmod(F.hash(F.col("external_id")), F.lit(slices)) == F.lit(index))
        rows = valid.select(*ARROW_COLUMNS).toArrow()
        # A slice holds every version of its external_ids, so the first row per key is the batch's.
        return first_per_key(rows) if batch.has_duplicate_keys else rows


def _on_thread(name: str, fn: Callable[..., pa.Table], *args: Any) -> Future[pa.Table]:
    """``fn(*args)`` on a thread of its own, its result or error in the Future. A thread per call,
    not a pool the sink would have to shut down: nothing is left running between batches."""
    future: Future[pa.Table] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever reads the result
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def collect_slices(payload_bytes: int, rows: int) -> int:
    """How many slices the Postgres sink collects a batch of ``rows`` rows in (see COLLECT_SLICE_BYTES)."""
    estimate = payload_bytes + rows * _ROW_OVERHEAD_BYTES
    return max(1, -(-estimate // COLLECT_SLICE_BYTES))


def _merge_laps(watch: Stopwatch, *, inside: float, waited: list[float]) -> None:
    """Lap the merge at its own time: apart from it the wait for the lake's commit, and ``inside``
    seconds of staging that ran within it (the executors' COPY, a sliced batch's collects)."""
    watch.lap("merge")
    name, seconds = watch.laps[-1]
    wait = sum(waited)
    watch.laps[-1] = (name, max(0.0, seconds - wait - inside))
    watch.laps.append(("wait_lake", wait))


def _written(merged: MergeResult, steps: tuple[tuple[str, float], ...] = ()) -> Written:
    return Written(
        rows=merged.rows_in,
        inserted=merged.inserted,
        updated=merged.updated,
        replayed=merged.replayed,
        steps=steps,
    )


def sinks_for(config: StreamJobConfig, typed: list[TypedColumn]) -> list[Sink]:
    """The enabled sinks, lake sinks in the order they write: quarantine, bronze; then Postgres."""
    sinks: list[Sink] = []
    if config.quarantine_enabled:
        sinks.append(QuarantineSink(config))
    if config.bronze_enabled:
        sinks.append(BronzeSink(config, typed))
    if config.postgres_enabled:
        sinks.append(PostgresSink(config))
    return sinks


def keep_table_properties_current(spark: SparkSession, path: str) -> None:
    """Bring a bronze table created by an earlier restlake up to the properties a new one gets.

    - Statistics columns that cover every column the table has now (a table created before
      restlake chose them, or typed columns a schema change added since), so that readers keep
      pruning on them.
    - The checkpoint interval (``bronze.CHECKPOINT_INTERVAL``), where the table has none of its own.

    Once per query, after its first append (the append adds new typed columns). Best effort: both
    speed things up and are never a reason to fail a batch.
    """
    try:
        snapshot = delta_log_snapshot(spark, path)
        configuration = snapshot.metadata().configuration()
        partition_by = tuple(snapshot_partition_columns(snapshot))
        schema = T.StructType.fromJson(json.loads(str(snapshot.schema().json())))
        want = bronze.stats_columns(schema, partition_by)
        current = configuration.get(bronze.STATS_PROPERTY)
        have = set(str(current.get()).split(",")) if current.isDefined() else None
        updates: dict[str, str] = {}
        if have is None or not have >= set(want):
            updates[bronze.STATS_PROPERTY] = ",".join(want)
        if not configuration.get(bronze.CHECKPOINT_INTERVAL_PROPERTY).isDefined():
            updates[bronze.CHECKPOINT_INTERVAL_PROPERTY] = str(bronze.CHECKPOINT_INTERVAL)
        if not updates:
            return
        quoted = path.replace("`", "``")
        pairs = ", ".join(f"'{key}' = '{value}'" for key, value in updates.items())
        spark.sql(f"ALTER TABLE delta.`{quoted}` SET TBLPROPERTIES ({pairs})")
        log.info(
            "bronze table properties set path=%s %s", path, " ".join(f"{k}={v}" for k, v in updates.items())
        )
    except Exception as exc:
        log.warning("bronze table properties not updated path=%s error=%s", path, exc)


def check_partition_columns(columns: list[str], partition_by: tuple[str, ...]) -> None:
    """Partition columns must be bronze columns, each once; raised before any table is created."""
    unknown = [c for c in partition_by if c not in columns]
    if unknown:
        raise ConfigError(
            f"spec.sinks.bronze.partitionBy names {unknown}, not columns of the bronze table; "
            f"choose from {columns}"
        )
    if len(set(partition_by)) != len(partition_by):
        raise ConfigError(f"spec.sinks.bronze.partitionBy repeats a column: {list(partition_by)}")


def _partition_columns(spark: SparkSession, path: str) -> list[str] | None:
    """The partition columns of the Delta table at ``path``, None when there is none yet.

    Read from the Delta log on the driver: a Spark job here (``DeltaTable.detail()``) would wait
    for an executor before the query starts, and a driver restarted while its predecessor's
    executors still hold the cluster's cores would wait past its liveness probe, again and again.
    """
    try:
        snapshot = delta_log_snapshot(spark, path)
        if int(snapshot.version()) < 0:
            return None
        return snapshot_partition_columns(snapshot)
    except Exception as exc:  # an internal API: fall back to the public one, which runs a job
        log.info("reading the Delta log directly failed (%s); using DeltaTable.detail()", type(exc).__name__)
        if not DeltaTable.isDeltaTable(spark, path):
            return None
        row = DeltaTable.forPath(spark, path).detail().select("partitionColumns").first()
        return list(row[0]) if row is not None else None
