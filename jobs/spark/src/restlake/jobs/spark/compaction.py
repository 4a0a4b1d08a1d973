"""The stream job's own compaction of the small files its appends leave in bronze and quarantine.

A micro-batch appends a file or a few; compaction bin-packs them in the background, every
``COMPACT_EVERY`` appends, counted from the table's commit history when the process starts and
by the process itself after that. It rewrites what the stream is appending to: the
source's partitions where the table is partitioned by source, and of those only today's and
yesterday's (UTC) where it is partitioned by ``ingest_date`` (the default), since a batch's rows
land in the day it runs; older partitions are ``restlake maintenance run``'s.

It replaces Delta's auto compaction, which the stream sessions switch off: that decides from
counts of small files kept in the driver's memory, which a restarted driver starts again from
nothing. Its first compaction then removes more files than it counted, the count
drops below zero, the partition is forgotten, and the next append looks like one never compacted:
every micro-batch after a restart rewrote the whole day's partition (measured on the recovery
benchmark: the Delta append 0.7-1 s before the kill, 5-16 s after it, for as long as the process
lived).

The rewrite is Delta's OPTIMIZE: a ``dataChange=false`` commit that the stream's blind appends do
not conflict with, so it runs on its own thread beside the next batches instead of inside one.
Files of 64 MB or more are left alone and bins close at 128 MB (Delta's auto compaction targets),
so a file is rewritten a bounded number of times whatever the table's age; ``restlake maintenance
run`` still does the large, scheduled OPTIMIZE and VACUUM.
"""

from __future__ import annotations

import logging
import threading
import time

from delta.tables import DeltaTable
from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from restlake.jobs.spark.delta_log import delta_log_snapshot, newest_commit_infos, snapshot_partition_columns

log = logging.getLogger(__name__)

# Delta's own auto compaction threshold (autoCompact.minNumFiles): a compaction at least every
# this many appends keeps a long-running stream's partitions at a few dozen files.
COMPACT_EVERY = 50
MIN_FILE_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = 128 * 1024 * 1024


# What a micro-batch's (or a backfill's) append commits as; OPTIMIZE is the compaction itself.
_APPEND_OPERATIONS = frozenset({"WRITE", "STREAMING UPDATE"})


def appends_since_optimize(spark: SparkSession, path: str, limit: int, *, version: int | None = None) -> int:
    """Appends committed to the table at ``path`` since its newest OPTIMIZE, counting at most the
    newest ``limit`` commits.

    Appends, not files: the count the running process keeps, carried across restarts. The table's
    file count stood in for it, and a table that had been compacted by maintenance but was old
    enough to hold ``limit`` files (fifty days of daily partitions) set off an OPTIMIZE beside the
    first batches of every process that started on it, a Delta state reconstruction of the whole
    table included: in the drain benchmark with 5M rows of history, that made the second
    micro-batch 41 s instead of 13 s. Reading the history reads only the newest commit files.
    """
    if version is not None:
        # The log's newest commit files, read on the driver: DeltaTable.history costs seconds on a
        # driver that has just started, and a restarted driver asks this before its first batch.
        try:
            newest = [
                info.get("operation")
                for info in newest_commit_infos(spark, path, version=version, limit=limit)
            ]
            if len(newest) == min(limit, version + 1):
                return _appends_before_optimize(newest)
        except (Py4JError, ValueError) as exc:
            log.info(
                "reading the newest commits of %s failed (%s); reading its history", path, type(exc).__name__
            )
    operations = (
        DeltaTable.forPath(spark, path).history(limit).orderBy("version", ascending=False).select("operation")
    )
    return _appends_before_optimize([row[0] for row in operations.collect()])


def _appends_before_optimize(operations: list[str | None]) -> int:
    count = 0
    for operation in operations:
        if operation == "OPTIMIZE":
            break
        if operation in _APPEND_OPERATIONS:
            count += 1
    return count


class StreamCompaction:
    """Counts a table's appends in this process and compacts, in the background, every ``every``."""

    def __init__(self, path: str, *, source: str, kind: str, every: int = COMPACT_EVERY) -> None:
        self.path = path
        self.source = source
        self.kind = kind
        self.every = every
        self._pending = 0
        self._by_source = False
        self._by_ingest_date = False
        self._thread: threading.Thread | None = None
        self.compactions = 0

    def start(self, spark: SparkSession) -> None:
        """Before the query: pick up the count where earlier processes left it, from the table's own
        commit history, so that short-lived runs (``--until-caught-up``, a driver that restarts
        before ``every`` batches) do not pile files up for ever: a table with ``every`` appends or
        more since its last OPTIMIZE is compacted after this process's first append."""
        try:
            snapshot = delta_log_snapshot(spark, self.path)
            columns = snapshot_partition_columns(snapshot)
            self._by_source = "source" in columns
            self._by_ingest_date = "ingest_date" in columns
            self._pending = appends_since_optimize(
                spark, self.path, self.every, version=int(snapshot.version())
            )
        except Exception as exc:  # an internal API; without it the first compaction waits its turn
            log.info(
                "could not read the commit history of %s (%s); compacting after %d appends",
                self.path,
                exc,
                self.every,
            )
            self._pending = 0

    def appended(self, spark: SparkSession) -> None:
        """One more append committed; start a compaction when one is due and none is running."""
        self._pending += 1
        if self._pending < self.every or self.running:
            return
        self._pending = 0
        self._thread = threading.Thread(
            target=self._compact, args=(spark,), name=f"compact-{self.kind}-{self.source}", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running compaction; True when none is left running."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _compact(self, spark: SparkSession) -> None:
        started = time.monotonic()
        try:
            # A session of its own: the file-size targets are this compaction's, not the settings
            # of anything else the driver runs (a maintenance OPTIMIZE aims at 1 GB files).
            session = spark.newSession()
            session.conf.set("spark.databricks.delta.optimize.minFileSize", str(MIN_FILE_BYTES))
            session.conf.set("spark.databricks.delta.optimize.maxFileSize", str(MAX_FILE_BYTES))
            builder = DeltaTable.forPath(session, self.path).optimize()
            where = []
            if self._by_source:
                # The spec's own identity (a DNS label or namespace.name): nothing to escape.
                where.append(f"source = '{self.source}'")
            if self._by_ingest_date:
                # The session's time zone is UTC, as ingest_date's is.
                where.append("ingest_date >= date_sub(current_date(), 1)")
            if where:
                builder = builder.where(" AND ".join(where))
            row = (
                builder.executeCompaction().select("metrics.numFilesRemoved", "metrics.numFilesAdded").first()
            )
            removed, added = (int(row[0]), int(row[1])) if row is not None else (0, 0)
            self.compactions += 1
            log.info(
                "compacted source=%s table=%s files_removed=%d files_added=%d duration_s=%.2f",
                self.source,
                self.kind,
                removed,
                added,
                time.monotonic() - started,
            )
        except Exception as exc:  # nothing is lost: the files stay as they were
            # Typically a concurrent metadata commit (a schema change's append): retry at the next append.
            self._pending = self.every
            log.warning("compaction failed source=%s table=%s error=%s", self.source, self.kind, exc)
