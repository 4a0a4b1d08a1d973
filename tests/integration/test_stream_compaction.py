"""The stream job's own compaction: its cadence, its restriction to the source, and a new process's
first compaction of a table that already holds many files (Spark and Delta on local disk)."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.jobs.spark.compaction import StreamCompaction

pytestmark = pytest.mark.integration


def append(spark: SparkSession, path: str, source: str, start: int, rows: int = 5, files: int = 1) -> None:
    """One append of ``files`` files (one: as a micro-batch's coalesced write leaves it)."""
    df = spark.range(start, start + rows).selectExpr("id", f"'{source}' AS source").repartition(files)
    df.write.format("delta").mode("append").partitionBy("source").save(path)


def files_of(spark: SparkSession, path: str, source: str) -> int:
    return len(spark.read.format("delta").load(path).where(f"source = '{source}'").inputFiles())


def operations(spark: SparkSession, path: str) -> list[str]:
    rows = DeltaTable.forPath(spark, path).history().orderBy("version").select("operation").collect()
    return [r[0] for r in rows]


def test_compacts_every_n_appends_and_only_the_source(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "bronze")
    DeltaTable.createIfNotExists(spark).location(path).addColumn("id", "BIGINT").addColumn(
        "source", "STRING"
    ).partitionedBy("source").execute()
    compaction = StreamCompaction(path, source="mine", kind="bronze", every=3)
    compaction.start(spark)
    # Another source's stream writes to the same table; its appends are not this stream's to count.
    append(spark, path, "other", 1000)
    append(spark, path, "other", 2000)

    for n in range(2):
        append(spark, path, "mine", n * 10)
        compaction.appended(spark)
    assert compaction.wait(120)
    assert "OPTIMIZE" not in operations(spark, path)
    assert files_of(spark, path, "mine") == 2

    append(spark, path, "mine", 20)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert compaction.compactions == 1
    assert operations(spark, path).count("OPTIMIZE") == 1
    assert files_of(spark, path, "mine") == 1
    # Another source's small files in the same table are its own stream's to compact.
    assert files_of(spark, path, "other") == 2
    rows = spark.read.format("delta").load(path)
    assert rows.where("source = 'mine'").count() == 15
    assert rows.where("source = 'other'").count() == 10

    # The count starts again: two more appends compact nothing.
    for n in range(3, 5):
        append(spark, path, "mine", n * 10)
        compaction.appended(spark)
    assert compaction.wait(120)
    assert operations(spark, path).count("OPTIMIZE") == 1


def test_a_new_process_compacts_a_table_of_many_appends_after_its_first_append(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A driver restarted (or a short `--until-caught-up` run) before the cadence comes round still
    compacts what its predecessors left, once, and then keeps the cadence."""
    path = str(tmp_path / "bronze")
    for n in range(4):
        append(spark, path, "mine", n * 10)
    compaction = StreamCompaction(path, source="mine", kind="bronze", every=4)
    compaction.start(spark)

    append(spark, path, "mine", 40)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert operations(spark, path).count("OPTIMIZE") == 1
    assert files_of(spark, path, "mine") == 1
    assert spark.read.format("delta").load(path).count() == 25

    append(spark, path, "mine", 50)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert operations(spark, path).count("OPTIMIZE") == 1


def test_a_new_process_counts_appends_since_the_last_optimize_not_files(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Many files from few appends (a backfill, a year of compacted daily partitions) are no reason
    to compact beside a new process's first batches; appends an earlier process made since the last
    OPTIMIZE count towards the cadence, and the OPTIMIZE resets it."""
    path = str(tmp_path / "bronze")
    append(spark, path, "mine", 0, rows=40, files=8)
    DeltaTable.forPath(spark, path).optimize().executeCompaction()
    append(spark, path, "mine", 100, rows=40, files=8)
    append(spark, path, "mine", 200)
    assert files_of(spark, path, "mine") == 10
    compaction = StreamCompaction(path, source="mine", kind="bronze", every=4)
    compaction.start(spark)

    # Two appends since the OPTIMIZE, plus this one: not yet four.
    append(spark, path, "mine", 300)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert operations(spark, path).count("OPTIMIZE") == 1
    assert files_of(spark, path, "mine") == 11

    append(spark, path, "mine", 400)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert compaction.compactions == 1
    assert operations(spark, path).count("OPTIMIZE") == 2
    assert files_of(spark, path, "mine") == 1
    assert spark.read.format("delta").load(path).count() == 95


def test_delta_auto_compaction_is_off_in_the_stream_session(spark: SparkSession, tmp_path: Path) -> None:
    """Delta's own auto compaction rewrote a partition whenever this process had not seen it
    compacted, whatever its file count: after every append of a restarted driver (its in-memory
    counts go negative and the partition is forgotten), and here after the first append of two
    files. Appends alone must leave the files as written."""
    path = str(tmp_path / "bronze")
    append(spark, path, "mine", 0, files=2)
    for n in range(1, 3):
        append(spark, path, "mine", n * 10)
    assert operations(spark, path) == ["WRITE"] * 3
    assert files_of(spark, path, "mine") == 4


def test_only_recent_days_are_compacted_where_the_table_is_partitioned_by_ingest_date(
    spark: SparkSession, tmp_path: Path
) -> None:
    """A batch's rows land in the day it runs; a year of history is maintenance's to rewrite, not
    something a stream starting on an old table should do beside its first batches."""
    path = str(tmp_path / "bronze")

    def append_on(day: str, start: int) -> None:
        df = spark.range(start, start + 5).selectExpr("id", "'mine' AS source", f"{day} AS ingest_date")
        df.coalesce(1).write.format("delta").mode("append").partitionBy("source", "ingest_date").save(path)

    for n in range(3):
        append_on("DATE'2024-05-01'", n * 10)
    for n in range(3, 5):
        append_on("current_date()", n * 10)
    compaction = StreamCompaction(path, source="mine", kind="bronze", every=5)
    compaction.start(spark)  # five files already: compact after the first append

    append_on("current_date()", 50)
    compaction.appended(spark)
    assert compaction.wait(120)
    assert operations(spark, path).count("OPTIMIZE") == 1
    rows = spark.read.format("delta").load(path)
    assert len(rows.where("ingest_date = current_date()").inputFiles()) == 1
    assert len(rows.where("ingest_date = DATE'2024-05-01'").inputFiles()) == 3
    assert rows.count() == 30
