"""The foreachBatch function: validate, quarantine, bronze, then Postgres, each idempotent on replay.

Per batch: one Spark job fills the cache and brings back each valid row's key and Kafka position;
the key ledger in Postgres says which keys bronze lacks (``bronze_keys``); then the bronze append
and the Postgres merge run side by side. The merge collects its rows as Arrow and COPYs them into
staging while Delta writes, but commits only after the Delta commit, so the crash order is as it
always was: on a replay of the same batch the bronze append is skipped by the key ledger, the
quarantine's by Delta's txnAppId/txnVersion and the merge by its ledger. Postgres gets every
valid record of the batch, not only those new to bronze: after a crash between the two commits,
the replay's bronze write is a no-op and the rows must still reach Postgres, where an unchanged
record is not rewritten anyway.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from dataclasses import dataclass, field, fields

import pyarrow as pa
import pyarrow.compute as pc
from pyspark import InheritableThread, StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.contracts.source.quality import Quality
from restlake.contracts.stream_job import StreamJobConfig
from restlake.errors import TransientError
from restlake.jobs.spark import class_archive, faults, quality
from restlake.jobs.spark import metrics as prom
from restlake.jobs.spark.bronze_keys import key_columns
from restlake.jobs.spark.schema_fastpath import supported as fast_path_supported
from restlake.jobs.spark.session import jvm_of
from restlake.jobs.spark.sinks import MicroBatch, Sink, Stopwatch, Written, sinks_for
from restlake.jobs.spark.typed_columns import typed_columns
from restlake.jobs.spark.validation import (
    PAYLOAD_VARIANT,
    REASON,
    SCHEMA_FALLBACK,
    check_fallback,
    validate,
)
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.stream import BatchCounts as LineageCounts
from restlake.lineage.stream import StreamTargets, emit_stream_batch

log = logging.getLogger(__name__)


@dataclass
class StreamMetrics:
    """Counts since the query started, updated by the batch function on the driver."""

    batches: int = 0
    rows_read: int = 0
    quarantined: int = 0
    dropped: int = 0
    bronze_written: int = 0
    pg_inserted: int = 0
    pg_updated: int = 0
    pg_replayed_batches: int = 0
    last_batch_id: int | None = None
    violations: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, batch: BatchCounts) -> None:
        with self._lock:
            self.batches += 1
            self.rows_read += batch.rows_read
            self.quarantined += batch.quarantined
            self.dropped += batch.dropped
            for name, n in batch.violations.items():
                self.violations[name] = self.violations.get(name, 0) + n
            self.bronze_written += batch.bronze_written
            self.pg_inserted += batch.pg_inserted
            self.pg_updated += batch.pg_updated
            self.pg_replayed_batches += int(batch.pg_replayed)
            self.last_batch_id = batch.batch_id

    def snapshot(self) -> dict[str, int | None]:
        """The scalar counts; ``violations`` (per expectation) is read from the attribute."""
        with self._lock:
            return {
                f.name: getattr(self, f.name)
                for f in fields(self)
                if not f.name.startswith("_") and f.name != "violations"
            }


@dataclass(frozen=True)
class BatchCounts:
    batch_id: int
    rows_read: int
    quarantined: int
    bronze_written: int
    pg_inserted: int
    pg_updated: int
    pg_replayed: bool
    duration_s: float
    dropped: int = 0
    violations: dict[str, int] = field(default_factory=dict)
    schema_fallback: int = 0

    def export(self, source: str) -> None:
        """Add this batch to the Prometheus counters of ``source``."""
        prom.BATCHES.labels(source).inc()
        prom.ROWS_READ.labels(source).inc(self.rows_read)
        prom.ROWS_QUARANTINED.labels(source).inc(self.quarantined)
        prom.SCHEMA_FALLBACK_ROWS.labels(source).inc(self.schema_fallback)
        prom.BRONZE_ROWS.labels(source).inc(self.bronze_written)
        prom.ROWS_MERGED.labels(source, "inserted").inc(self.pg_inserted)
        prom.ROWS_MERGED.labels(source, "updated").inc(self.pg_updated)
        if self.pg_replayed:
            prom.REPLAYED_BATCHES.labels(source).inc()
        for name, n in self.violations.items():
            prom.EXPECTATION_VIOLATIONS.labels(source, name).inc(n)
        prom.LAST_COMMITTED_BATCH.labels(source).set(self.batch_id)


def checkpoint_query_id(spark: SparkSession, checkpoint_path: str) -> str:
    """The query id Spark keeps in ``<checkpoint>/metadata``: stable across restarts, new per checkpoint.

    Read through Hadoop's filesystem API on the driver, so that it works for any filesystem the
    checkpoint is on (file, s3a) without a Spark job: as a job (``spark.read.text``) it cost a
    restarted driver ~1 s of its first, cold micro-batch.
    """
    jvm = jvm_of(spark)
    path = jvm.org.apache.hadoop.fs.Path(checkpoint_path.rstrip("/") + "/metadata")
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    stream = path.getFileSystem(hadoop_conf).open(path)
    try:
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        line = reader.readLine()
    finally:
        stream.close()
    if not line:
        raise TransientError(f"checkpoint metadata at {checkpoint_path} is empty")
    return str(json.loads(str(line))["id"])


class BatchProcessor:
    """Callable for ``DataStreamWriter.foreachBatch``; one per running query."""

    def __init__(self, config: StreamJobConfig, metrics: StreamMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics if metrics is not None else StreamMetrics()
        self.failure: BaseException | None = None
        self._query_id: str | None = None
        self.typed = typed_columns(config.json_schema)
        self.sinks = sinks_for(config, self.typed)
        # Transport "none" unless RESTLAKE_LINEAGE_TRANSPORT says otherwise; a failed send is logged
        # and counted by the emitter, never raised, so lineage cannot stop ingestion.
        self.lineage = LineageEmitter.from_settings()
        self.lineage_targets = StreamTargets(
            source=config.source,
            kafka_bootstrap=config.kafka_bootstrap,
            topic=config.topic or config.topic_pattern or "",
            bronze_uri=config.bronze_path,
            quarantine_uri=config.quarantine_path,
            pg_dsn=config.pg_dsn.get_secret_value(),
            pg_table=config.pg_table,
            typed_columns=tuple((c.column, c.data_type.simpleString()) for c in self.typed),
            sinks=frozenset(sink.name for sink in self.sinks),
        )

    @functools.cached_property
    def schema_check_deferred(self) -> bool:
        """jsonschema runs as a second pass, only for batches holding a payload the compiled check
        could not accept; a schema with no compiled check sends every row to it in one pass.
        (A property: compiling builds Columns, which needs the running SparkContext.)"""
        schema = self.config.json_schema
        return schema is not None and fast_path_supported(schema)

    @property
    def _gate_rules(self) -> Quality | None:
        quality_rules = self.config.quality
        return quality_rules if quality_rules is not None and quality_rules.expectations else None

    def validated(self, kafka_df: DataFrame) -> DataFrame:
        """The query's Kafka rows as every micro-batch gets them: validated and slimmed.

        Applied once to the streaming DataFrame, not to each micro-batch: building the validation's
        plan from Python took half a second of every batch (hundreds of py4j calls and repeated
        analysis), more than reading and validating 2,000 records."""
        # Typed columns and expectations read the payload as VARIANT; without them it is not built.
        variant = bool(self.typed) or self._gate_rules is not None
        validated = validate(
            kafka_df,
            source=self.config.source,
            json_schema=self.config.json_schema,
            max_message_bytes=self.config.max_message_bytes,
            defer_schema_check=self.schema_check_deferred,
            payload_variant=variant,
        )
        return slim(validated, keep_variant=variant)

    def query_id(self, spark: SparkSession) -> str:
        if self._query_id is None:
            self._query_id = checkpoint_query_id(spark, self.config.checkpoint_path)
        return self._query_id

    def app_id(self, spark: SparkSession) -> str:
        """Delta txnAppId: the source and the checkpoint's query id."""
        return f"restlake-{self.config.source}-{self.query_id(spark)}"

    def __call__(self, batch_df: DataFrame, batch_id: int) -> None:
        try:
            counts = self.process(batch_df, batch_id)
        except BaseException as exc:
            # Kept so the caller can re-raise the typed error instead of Spark's wrapper of it.
            self.failure = exc
            log.exception("batch failed source=%s batch_id=%s", self.config.source, batch_id)
            emit_stream_batch(self.lineage, self.lineage_targets, None, error=type(exc).__name__)
            raise
        self.metrics.add(counts)
        counts.export(self.config.source)
        # After the commit: a lineage round trip must not sit between the bronze write and the merge.
        emit_stream_batch(
            self.lineage,
            self.lineage_targets,
            LineageCounts(
                bronze_rows=counts.bronze_written,
                quarantine_rows=counts.quarantined,
                postgres_rows=counts.pg_inserted + counts.pg_updated,
            ),
        )

    def process(self, batch_df: DataFrame, batch_id: int) -> BatchCounts:
        started = time.monotonic()
        cfg = self.config
        spark = batch_df.sparkSession
        app_id = self.app_id(spark)
        query_id = self.query_id(spark)

        watch = Stopwatch()

        gate_rules = self._gate_rules
        # batch_df is already validated (``validated``): the query's plan holds the validation.
        validated = batch_df
        validated = validated.persist(StorageLevel.MEMORY_AND_DISK)
        cached: list[DataFrame] = [validated]
        beside: list[InheritableThread] = []
        try:
            # One job fills the cache and brings back what every later step needs to know: which
            # rows are valid, and the key and Kafka position of each (a few bytes a row).
            facts = _facts(validated, fallback=SCHEMA_FALLBACK in validated.columns)
            rows_read = facts.num_rows
            schema_fallback = int(pc.sum(facts["_fallback"].cast(pa.int64())).as_py() or 0)
            if schema_fallback and self.schema_check_deferred and cfg.json_schema is not None:
                # Some payloads need jsonschema's verdict: a second pass over the cache, its
                # result cached in turn so that the UDF runs once per row.
                validated = check_fallback(validated, cfg.json_schema).persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(validated)
                facts = _facts(validated, fallback=False)
            facts = facts.drop_columns(["_fallback"])
            valid_facts = facts.filter(facts["_ok"])
            valid_bytes = int(pc.sum(valid_facts["_bytes"]).as_py() or 0)
            keys = valid_facts.drop_columns(["_ok", "_bytes"])
            invalid = rows_read - keys.num_rows
            watch.lap("validate")
            valid = validated.where(F.col(REASON).isNull())
            rejected = validated.where(F.col(REASON).isNotNull())

            # The gate runs before any write, so a failing batch leaves every sink untouched.
            violations: dict[str, int] = {}
            dropped = 0
            if gate_rules is not None:
                gate = quality.check(valid, gate_rules, payload_variant=PAYLOAD_VARIANT)
                cached.append(gate.cached)
                violations = gate.violations
                if violations:
                    log.warning(
                        "expectations violated source=%s batch_id=%s on_violation=%s violations=%s",
                        cfg.source,
                        batch_id,
                        gate_rules.on_violation,
                        violations,
                    )
                if violations and gate_rules.on_violation == "fail":
                    raise quality.ExpectationFailed(cfg.source, batch_id, violations, gate.rows)
                checked = gate.checked
                if gate_rules.on_violation == "drop" and violations:
                    violating = checked.where(F.col(quality.EXPECTATION).isNotNull())
                    dropped_by = violating.groupBy(quality.EXPECTATION).count().collect()
                    for row in dropped_by:
                        prom.ROWS_DROPPED.labels(cfg.source, row[0]).inc(row[1])
                    dropped = sum(int(row[1]) for row in dropped_by)
                    rejected = rejected.unionByName(
                        violating.withColumn(
                            REASON, F.concat(F.lit(quality.REASON_PREFIX), F.col(quality.EXPECTATION))
                        ).drop(quality.EXPECTATION)
                    )
                    checked = checked.where(F.col(quality.EXPECTATION).isNull())
                    valid = checked.drop(quality.EXPECTATION)
                    keys = valid.select(*_row_facts()).toArrow()
                else:
                    valid = checked.drop(quality.EXPECTATION)
            watch.lap("quality")

            # Sinks that commit after the lake (the Postgres merge: collect as Arrow, COPY, upsert)
            # start now and run beside the quarantine write, the key claim and the bronze append,
            # but commit only after the bronze commit: Postgres never holds a batch that bronze
            # does not, as before, at the cost of neither.
            lake_done = threading.Event()
            lake_failed: list[BaseException] = []

            def lake_committed() -> None:
                lake_done.wait()
                if lake_failed:
                    raise TransientError(
                        f"bronze append of batch {batch_id} of source {cfg.source} failed; merge rolled back"
                    )

            quarantined = invalid + dropped
            batch = MicroBatch(
                spark=spark,
                batch_id=batch_id,
                query_id=query_id,
                app_id=app_id,
                valid=valid,
                rejected=rejected,
                rejected_rows=quarantined,
                keys=keys,
                valid_payload_bytes=valid_bytes,
                lake_committed=lake_committed,
            )
            written: dict[str, Written] = {}
            errors: list[BaseException] = []

            def write_beside(sink: Sink) -> None:
                try:
                    written[sink.name] = sink.write(batch)
                except BaseException as exc:  # re-raised on the driver thread below
                    errors.append(exc)

            for sink in self.sinks:
                if sink.commits_after_lake:
                    thread = InheritableThread(
                        target=write_beside, args=(sink,), name=f"{sink.name}-{cfg.source}-{batch_id}"
                    )
                    thread.start()
                    beside.append(thread)
            try:
                for sink in self.sinks:
                    if not sink.commits_after_lake:
                        written[sink.name] = sink.write(batch)
                        watch.lap(sink.name)
                if quarantined and not self.config.quarantine_enabled:
                    log.warning(
                        "quarantine disabled: rejected records not kept source=%s batch_id=%s rejected=%s",
                        cfg.source,
                        batch_id,
                        quarantined,
                    )
                faults.after_bronze_write(batch_id)
            except BaseException as exc:
                lake_failed.append(exc)
                raise
            finally:
                lake_done.set()
            for thread in beside:
                thread.join()
            beside.clear()
            if errors:
                raise errors[0]
            watch.lap("postgres")
        finally:
            for thread in beside:
                thread.join()
            for df in cached:
                df.unpersist()

        merged = written.get("postgres", Written())
        counts = BatchCounts(
            batch_id=batch_id,
            rows_read=rows_read,
            quarantined=quarantined,
            bronze_written=written.get("bronze", Written()).rows,
            pg_inserted=merged.inserted,
            pg_updated=merged.updated,
            pg_replayed=merged.replayed,
            duration_s=time.monotonic() - started,
            dropped=dropped,
            violations=violations,
            schema_fallback=schema_fallback,
        )
        log.info(
            "batch done source=%s batch_id=%s rows_read=%s quarantined=%s dropped=%s schema_fallback=%s "
            "bronze_written=%s pg_inserted=%s pg_updated=%s pg_replayed=%s duration_s=%.2f steps=%s",
            cfg.source,
            batch_id,
            counts.rows_read,
            counts.quarantined,
            counts.dropped,
            counts.schema_fallback,
            counts.bronze_written,
            counts.pg_inserted,
            counts.pg_updated,
            counts.pg_replayed,
            counts.duration_s,
            " ".join(
                [f"{k}:{v:.2f}" for k, v in watch.laps]
                + [f"{sink}.{k}:{v:.2f}" for sink, w in written.items() for k, v in w.steps]
            ),
        )
        if rows_read:
            class_archive.dump_when_warm()
        return counts


def slim(validated: DataFrame, *, keep_variant: bool) -> DataFrame:
    """What the batch caches: the raw Kafka value only for rows that go (or may go, awaiting
    jsonschema) to quarantine, and the payload VARIANT only when typed columns or expectations
    read it (each is as big as the payload)."""
    may_go = F.col(REASON).isNotNull()
    if SCHEMA_FALLBACK in validated.columns:
        may_go = may_go | F.col(SCHEMA_FALLBACK)
    slimmed = validated.withColumn("raw_value", F.when(may_go, F.col("raw_value")))
    return slimmed if keep_variant else slimmed.drop(PAYLOAD_VARIANT)


def _row_facts() -> list[Column]:
    """What the driver keeps of each valid row (``MicroBatch.keys``): its key and Kafka position for
    the bronze ledger, its external_id and raw version for the merge (distinct keys, parsed versions)."""
    return [*key_columns(), F.col("external_id"), F.col("version").cast("string").alias("version")]


def _facts(validated: DataFrame, *, fallback: bool) -> pa.Table:
    """Per row: valid or not, its key and Kafka position, and whether jsonschema must still judge it."""
    doubtful = F.col(SCHEMA_FALLBACK) if fallback else F.lit(False)
    return validated.select(
        F.col(REASON).isNull().alias("_ok"),
        *_row_facts(),
        doubtful.alias("_fallback"),
        F.octet_length(F.col("payload")).alias("_bytes"),
    ).toArrow()
