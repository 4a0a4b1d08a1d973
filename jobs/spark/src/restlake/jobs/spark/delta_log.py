"""A Delta table's log read on the driver: its current snapshot and its newest commits, no Spark job.

``DeltaTable.detail`` and ``DeltaTable.history`` answer the same questions with DataFrames, and on
a driver that has just started a first call costs seconds (``history``: 2.5 s measured, against
0.1 s for ``newest_commit_infos``): a restarted driver asks them before its first batch, so that
time was the way back after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession

from restlake.jobs.spark.session import jvm_of


def delta_log_snapshot(spark: SparkSession, path: str) -> Any:
    """The current snapshot of the Delta table at ``path``, read from its log on the driver.

    Delta's internal JVM API (``DeltaLog.forTable(...).update``): callers fall back to the public
    ``DeltaTable`` one, which runs a Spark job, when it fails.
    """
    jvm = jvm_of(spark)
    return jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).update(
        False, jvm.scala.Option.empty(), jvm.scala.Option.empty()
    )


def snapshot_partition_columns(snapshot: Any) -> list[str]:
    """The partition columns of a Delta snapshot read through py4j (a Scala Seq of strings)."""
    joined = str(snapshot.metadata().partitionColumns().mkString("\n"))
    return joined.split("\n") if joined else []


def newest_commit_infos(
    spark: SparkSession, path: str, *, version: int, limit: int
) -> Iterator[dict[str, Any]]:
    """The ``commitInfo`` of the table's commits from ``version`` back, newest first, at most ``limit``,
    each with its ``version``; stops early where a commit file has no commitInfo first (Delta
    writes it first). Raises Py4JError (a commit file gone with the log's cleanup, an internal API
    that moved) or ValueError (a commit file that is not JSON): callers fall back."""
    jvm = jvm_of(spark)
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    store, conf = delta_log.store(), delta_log.newDeltaHadoopConf()
    log_path = str(delta_log.logPath().toString())
    for commit in range(version, max(-1, version - limit), -1):
        lines = store.read(jvm.org.apache.hadoop.fs.Path(f"{log_path}/{commit:020d}.json"), conf)
        if lines.isEmpty():
            return
        info = json.loads(str(lines.head())).get("commitInfo")
        if not isinstance(info, dict):
            return
        yield {**info, "version": commit}
