"""Which rows of a micro-batch bronze still lacks, decided by the Postgres key ledger.

The ledger (``restlake.postgres.bronze_keys``) answers with one index probe per key, so deciding
costs the same on an empty table and on one with years of history. This module is the Spark side:
it collects the batch's keys (a few bytes per row), keeps the first occurrence of each key (the
lowest Kafka partition and offset, so a replay keeps the same row), claims them, and turns the
answer back into a filter on the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable
from pydantic import SecretStr
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.jobs.spark import bronze_commits
from restlake.jobs.spark.bronze_commits import Landed
from restlake.jobs.spark.delta_log import delta_log_snapshot
from restlake.postgres import bronze_keys as ledger

log = logging.getLogger(__name__)

KEY = "_key"
_POSITION = "_pos"
# Kafka offsets stay far below 2**40 (a trillion records per partition); partitions below 2**23.
_PARTITION_SHIFT = 1 << 40


def key_digest(idempotency_key: Column | str = "idempotency_key") -> Column:
    """md5 of the idempotency key as 32 hex digits: the ledger's key."""
    return F.md5(F.col(idempotency_key) if isinstance(idempotency_key, str) else idempotency_key)


@dataclass(frozen=True)
class TableState:
    """A Delta table's own id (a table deleted and created again at a path gets a new one) and version."""

    id: str
    version: int


def table_state(spark: SparkSession, path: str) -> TableState:
    """Read from the Delta log on the driver: ``DeltaTable.detail()`` would run a Spark job for it."""
    try:
        snapshot = delta_log_snapshot(spark, path)
        return TableState(str(snapshot.metadata().id()).replace("-", ""), int(snapshot.version()))
    except Exception as exc:  # an internal API: fall back to the public one, slower
        log.info("reading the Delta log directly failed (%s); using DeltaTable.detail()", type(exc).__name__)
        table = DeltaTable.forPath(spark, path)
        row = table.detail().select("id").first()
        version = table.history(1).select("version").first()
        if row is None or not row[0] or version is None:
            raise RuntimeError(f"the Delta table at {path} has no id") from None
        return TableState(str(row[0]).replace("-", ""), int(version[0]))


def ensure_seeded(spark: SparkSession, dsn: SecretStr, *, path: str, table: TableState, source: str) -> None:
    """Copy the keys bronze held for ``source`` before the ledger existed, once per (table, source)."""
    if ledger.is_seeded(dsn, table_id=table.id, source=source):
        return
    if table.version == 0:
        # Only the commit that created the table: nothing to copy, no need to scan.
        ledger.seed(dsn, table_id=table.id, source=source, keys=())
        return
    keys = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("source") == F.lit(source))
        .select(key_digest().alias(KEY))
    )
    ledger.seed(dsn, table_id=table.id, source=source, keys=(row[0] for row in keys.toLocalIterator()))


@dataclass(frozen=True)
class Selection:
    """The batch's valid rows bronze should get: ``rows`` of them, all of ``valid`` when ``everything``."""

    rows: int
    everything: bool
    positions: pa.Table | None = None

    def apply(self, spark: SparkSession, valid: DataFrame) -> DataFrame:
        if self.everything or self.positions is None:
            return valid
        chosen = spark.createDataFrame(self.positions)
        return valid.join(F.broadcast(chosen), on=["kafka_partition", "kafka_offset"], how="left_semi")


def key_columns() -> list[Column]:
    """What ``select_new`` reads per row: the key and the Kafka position (~50 bytes a row as Arrow)."""
    return [key_digest().alias(KEY), F.col("kafka_partition"), F.col("kafka_offset")]


def select_new(
    spark: SparkSession,
    dsn: SecretStr,
    keys: pa.Table,
    *,
    path: str,
    table: str,
    source: str,
    query_id: str,
    batch_id: int,
) -> Selection:
    """Claim the batch's keys and say which of its rows bronze gets: one per key, new keys only."""
    if keys.num_rows == 0:
        return Selection(0, everything=True)
    first = (
        keys.select([KEY])
        .append_column(_POSITION, _positions(keys))
        .group_by(KEY)
        .aggregate([(_POSITION, "min")])
        .rename_columns([KEY, _POSITION])
    )
    claim = ledger.claim(
        dsn, table_id=table, query_id=query_id, batch_id=batch_id, keys=first[KEY].to_pylist()
    )
    if claim.committed:
        return Selection(0, everything=False)
    fresh = set(claim.fresh)
    if claim.retried:
        # A replay of this batch after a crash between its claim and its confirmation. An earlier
        # attempt's append is one Delta commit, tagged with the batch: it holds every key that
        # attempt claimed, or there is none. The log answers that without a scan; where it cannot,
        # the rows an earlier attempt appended carry this batch id, so only those are read.
        landed = bronze_commits.batch_landed(
            spark,
            path,
            query_id=query_id,
            batch_id=batch_id,
            version=int(delta_log_snapshot(spark, path).version()),
        )
        if landed is Landed.YES:
            present = set(claim.retried)
        elif landed is Landed.NO:
            present = set()
        else:
            present = present_in_bronze(
                spark, path=path, source=source, keys=claim.retried, batch_id=batch_id
            )
        fresh -= present
        log.warning(
            "replay of an unconfirmed bronze batch source=%s batch_id=%s claimed_before=%s "
            "already_in_bronze=%s answered_by=%s",
            source,
            batch_id,
            len(claim.retried),
            len(present),
            "scan" if landed is Landed.UNKNOWN else "commit_tags",
        )
    if claim.unconfirmed:
        # Claimed by another query that died before confirming its append: look in bronze itself.
        present = present_in_bronze(spark, path=path, source=source, keys=claim.unconfirmed)
        absent = claim.unconfirmed - present
        ledger.settle(
            dsn, table_id=table, query_id=query_id, batch_id=batch_id, present=present, absent=absent
        )
        fresh |= absent
        log.warning(
            "bronze keys claimed by an unfinished batch of another query source=%s batch_id=%s "
            "unconfirmed=%s found_in_bronze=%s",
            source,
            batch_id,
            len(claim.unconfirmed),
            len(present),
        )
    duplicates = first.num_rows < keys.num_rows
    if len(fresh) == first.num_rows and not duplicates:
        return Selection(keys.num_rows, everything=True)
    chosen = first.filter(pc.is_in(first[KEY], value_set=pa.array(sorted(fresh), pa.string())))
    positions = chosen[_POSITION]
    partition = pc.divide(positions, _PARTITION_SHIFT).cast(pa.int32())
    offset = pc.subtract(positions, pc.multiply(partition.cast(pa.int64()), _PARTITION_SHIFT))
    table_ = pa.table({"kafka_partition": partition, "kafka_offset": offset})
    return Selection(chosen.num_rows, everything=False, positions=table_)


def _positions(rows: pa.Table) -> pa.Array:
    return pc.add(
        pc.multiply(rows["kafka_partition"].cast(pa.int64()), _PARTITION_SHIFT), rows["kafka_offset"]
    )


def first_per_key(rows: pa.Table) -> pa.Table:
    """One row per idempotency_key, the first on the topic: what bronze keeps of a batch."""
    order = pa.table(
        {
            "k": rows["idempotency_key"],
            _POSITION: _positions(rows),
            "i": pa.array(range(rows.num_rows), pa.int64()),
        }
    ).sort_by(_POSITION)
    firsts = order.group_by("k", use_threads=False).aggregate([("i", "first")])
    keep = firsts["i_first"]
    return rows.take(pc.take(keep, pc.sort_indices(keep)))


def present_in_bronze(
    spark: SparkSession, *, path: str, source: str, keys: frozenset[str], batch_id: int | None = None
) -> set[str]:
    """Which of ``keys`` the source's rows in bronze hold: a scan of its history, the rare path.

    ``batch_id``: only rows written by micro-batches with that id; Delta's file statistics then
    skip nearly every file of the source's history."""
    wanted = spark.createDataFrame([(k,) for k in sorted(keys)], f"{KEY} string")
    rows = spark.read.format("delta").load(path).where(F.col("source") == F.lit(source))
    if batch_id is not None:
        rows = rows.where(F.col("batch_id") == F.lit(batch_id).cast("long"))
    found = rows.select(key_digest().alias(KEY)).join(F.broadcast(wanted), on=KEY, how="left_semi").distinct()
    return {row[0] for row in found.collect()}
