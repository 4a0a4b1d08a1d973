"""A Delta table's newest commits, read from its log on the driver: a few small files, no Spark job.

``DeltaTable.history`` answers the same question with a DataFrame, and on a driver that has just
started its first call costs seconds (2.5 s measured, against 0.1 s for this): a restarted
driver asks it before its first batch, so that time was the way back after a crash.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pyspark.sql import SparkSession

from restlake.jobs.spark.session import jvm_of


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
