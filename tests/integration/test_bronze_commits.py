"""Whether a batch's bronze append landed, read from the tags of the table's newest Delta commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.jobs.spark import bronze
from restlake.jobs.spark.bronze_commits import Landed, batch_landed, tag
from restlake.jobs.spark.delta_log import delta_log_snapshot

pytestmark = pytest.mark.integration


class Table:
    def __init__(self, spark: SparkSession, path: Path) -> None:
        self.spark, self.path = spark, str(path)
        DeltaTable.createIfNotExists(spark).location(self.path).addColumn("n", "BIGINT").execute()

    def append(self, user_metadata: str | None) -> None:
        bronze.append(
            self.spark.range(3).withColumnRenamed("id", "n"),
            path=self.path,
            app_id=None,
            batch_id=0,
            user_metadata=user_metadata,
        )

    def landed(self, query_id: str, batch_id: int, **kw: int) -> Landed:
        version = int(delta_log_snapshot(self.spark, self.path).version())
        return batch_landed(
            self.spark, self.path, query_id=query_id, batch_id=batch_id, version=version, **kw
        )


def test_a_tagged_append_is_found_past_other_queries_and_compaction(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = Table(spark, tmp_path / "t")
    assert table.landed("q", 0) is Landed.NO  # only the table's creation
    table.append(tag("q", 0))
    table.append(tag("q", 1))
    table.append(tag("other", 7))  # another source's query on a shared table
    DeltaTable.forPath(spark, table.path).optimize().executeCompaction()
    assert table.landed("q", 1) is Landed.YES
    # Batch 2 would come after batch 1's commit: reaching that commit settles it.
    assert table.landed("q", 2) is Landed.NO
    assert table.landed("other", 7) is Landed.YES
    assert table.landed("other", 8) is Landed.NO


def test_an_untagged_append_or_a_short_walk_leaves_it_to_the_scan(
    spark: SparkSession, tmp_path: Path
) -> None:
    table = Table(spark, tmp_path / "t")
    table.append(None)  # written before the tag existed: it could be the batch's own append
    table.append(tag("q", 3))
    assert table.landed("q", 4) is Landed.NO  # batch 3's commit is newer than the untagged one
    assert table.landed("q", 3) is Landed.YES
    assert table.landed("r", 0) is Landed.UNKNOWN
    table.append(tag("other", 1))
    table.append(tag("other", 2))
    assert table.landed("q", 4, limit=2) is Landed.UNKNOWN  # batch 3's commit is 3 back
