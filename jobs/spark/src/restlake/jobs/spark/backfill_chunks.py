"""How a backfill cuts the rows it replays into merge transactions without collecting them.

The rows stay in Spark: each is given a bucket by a hash of its external_id, one Spark job counts
the rows and keys per bucket, and the buckets are packed, in bucket order, into chunks of at most
``chunk_rows`` rows. A chunk is then a filter on its buckets, staged by the executors (or
collected as Arrow where they cannot reach Postgres). Packing buckets rather than numbering rows
keeps every version of one record in one chunk and needs no sort; the plan depends only on the
rows, so a rerun under the same run id cuts the same chunks and the ledger skips the merged ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BUCKET = "_restlake_bucket"
# Buckets per chunk the plan aims at: the more, the closer chunks come to ``chunk_rows``, for a
# longer ``isin`` per chunk and more counts collected (8,000 for 100M rows in chunks of 100,000).
BUCKETS_PER_CHUNK = 8


@dataclass(frozen=True)
class Chunk:
    """One merge transaction of a backfill: its buckets, and the rows and distinct keys they hold."""

    buckets: tuple[int, ...]
    rows: int
    keys: int


def bucketed(rows: DataFrame, total: int, chunk_rows: int) -> DataFrame:
    """``rows`` with their ``BUCKET`` (an int in ``[0, buckets)``) for ``total`` rows in chunks of
    ``chunk_rows``."""
    buckets = max(1, -(-total // chunk_rows)) * BUCKETS_PER_CHUNK
    return rows.withColumn(BUCKET, F.pmod(F.xxhash64(F.col("external_id")), F.lit(buckets)).cast("int"))


def bucket_counts(bucketed_rows: DataFrame) -> dict[int, tuple[int, int]]:
    """Rows and distinct external_ids per bucket that holds any (one Spark job)."""
    counted = bucketed_rows.groupBy(BUCKET).agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("external_id").alias("keys")
    )
    return {int(r[BUCKET]): (int(r["rows"]), int(r["keys"])) for r in counted.collect()}


def plan(counts: dict[int, tuple[int, int]], chunk_rows: int) -> list[Chunk]:
    """Buckets packed in bucket order into chunks of at most ``chunk_rows`` rows; a bucket that holds
    more (one record with more versions than that, or a skewed hash) is a chunk of its own."""
    chunks: list[Chunk] = []
    buckets: list[int] = []
    rows = keys = 0
    for bucket in sorted(counts):
        bucket_rows, bucket_keys = counts[bucket]
        if buckets and rows + bucket_rows > chunk_rows:
            chunks.append(Chunk(tuple(buckets), rows, keys))
            buckets, rows, keys = [], 0, 0
        buckets.append(bucket)
        rows, keys = rows + bucket_rows, keys + bucket_keys
    if buckets:
        chunks.append(Chunk(tuple(buckets), rows, keys))
    return chunks


def rows_of(bucketed_rows: DataFrame, chunk: Chunk) -> DataFrame:
    """The chunk's rows, without their bucket."""
    return bucketed_rows.where(F.col(BUCKET).isin(list(chunk.buckets))).drop(BUCKET)
