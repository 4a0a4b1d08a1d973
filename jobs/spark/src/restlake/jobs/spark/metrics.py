"""Prometheus metrics of the stream job, served from the driver.

Counters come from the batch function (what was merged, quarantined, dropped); rates, batch
duration and Kafka lag from Spark's query progress, polled from the driver (``ProgressMetrics``). Every
series carries ``source``; lag adds ``topic`` and ``partition``, expectation counters the
expectation's name: all bounded by the spec (topics and partitions it reads, ≤ 100 expectations).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pyspark.sql.streaming import StreamingQuery

from restlake.contracts.source.quality import Quality, expectation_name

log = logging.getLogger(__name__)

INPUT_ROWS_PER_SECOND = Gauge(
    "restlake_stream_input_rows_per_second",
    "Rate at which records arrived from Kafka in the last micro-batch (Spark's inputRowsPerSecond).",
    ["source"],
)
PROCESSED_ROWS_PER_SECOND = Gauge(
    "restlake_stream_processed_rows_per_second",
    "Rate at which the last micro-batch processed records (Spark's processedRowsPerSecond).",
    ["source"],
)
BATCH_DURATION = Histogram(
    "restlake_stream_batch_duration_seconds",
    "Wall time of a micro-batch trigger, from Spark's triggerExecution duration.",
    ["source"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
KAFKA_LAG = Gauge(
    "restlake_stream_kafka_lag_records",
    "Records in the partition beyond what the last micro-batch read (latest offset minus end offset).",
    ["source", "topic", "partition"],
)
ROWS_READ = Counter("restlake_stream_rows_read_total", "Kafka records read by micro-batches.", ["source"])
ROWS_MERGED = Counter(
    "restlake_stream_rows_merged_total",
    "Rows inserted or updated in Postgres by the merge (replayed batches add none).",
    ["source", "op"],
)
ROWS_QUARANTINED = Counter(
    "restlake_stream_rows_quarantined_total",
    "Records written to the quarantine table (validation failures and dropped expectation violations).",
    ["source"],
)
ROWS_DROPPED = Counter(
    "restlake_stream_rows_dropped_total",
    "Records kept out of bronze and Postgres by an expectation with onViolation drop.",
    ["source", "expectation"],
)
EXPECTATION_VIOLATIONS = Counter(
    "restlake_stream_expectation_violations_total",
    "Records violating an expectation, whatever onViolation does about it.",
    ["source", "expectation"],
)
SCHEMA_FALLBACK_ROWS = Counter(
    "restlake_stream_schema_fallback_rows_total",
    "Records whose payload the compiled JSON Schema check could not accept, so jsonschema judged them "
    "in Python (every record, when the schema uses keywords the compiler does not translate).",
    ["source"],
)
BRONZE_ROWS = Counter(
    "restlake_stream_bronze_rows_written_total", "Record versions appended to bronze.", ["source"]
)
BATCHES = Counter(
    "restlake_stream_batches_total", "Micro-batches completed by the batch function.", ["source"]
)
REPLAYED_BATCHES = Counter(
    "restlake_stream_replayed_batches_total",
    "Micro-batches whose Postgres merge was already in the ledger (a replay after a crash).",
    ["source"],
)
LAST_COMMITTED_BATCH = Gauge(
    "restlake_stream_last_committed_batch_id",
    "Id of the last micro-batch whose sinks all committed (bronze, quarantine, Postgres ledger).",
    ["source"],
)

# The ``op`` values of ROWS_MERGED: what the Postgres merge reports.
MERGE_OPS = ("inserted", "updated")


def init_source(source: str, quality: Quality | None) -> None:
    """Export the counters of ``source`` at 0, per merge op and per declared expectation, before any batch.

    Until its first increment a labelled counter has no series, so ``rate()`` of quarantined rows or of
    an expectation's violations reads "no data" instead of 0 and alerts on them cannot fire or
    resolve. The expectation label takes the spec's names only, the same bounded set the gate counts
    under. Gauges stay unset: a batch id or a lag of 0 before any batch would be a claim, not a count.
    """
    for counter in (
        ROWS_READ,
        ROWS_QUARANTINED,
        SCHEMA_FALLBACK_ROWS,
        BRONZE_ROWS,
        BATCHES,
        REPLAYED_BATCHES,
    ):
        counter.labels(source)
    for op in MERGE_OPS:
        ROWS_MERGED.labels(source, op)
    BATCH_DURATION.labels(source)
    for expectation in quality.expectations if quality is not None else ():
        name = expectation_name(expectation)
        EXPECTATION_VIOLATIONS.labels(source, name)
        ROWS_DROPPED.labels(source, name)


def _offsets(raw: Any) -> dict[str, dict[str, int]]:
    """Offsets by topic and partition; {} when the progress carries none.

    Spark reports an empty ``latestOffset`` for some batches (the first one of a query restarted
    from its checkpoint, seen on a standalone cluster): the lag is then unknown, not an error.
    """
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(topic): {str(p): int(o) for p, o in parts.items()}
        for topic, parts in data.items()
        if isinstance(parts, dict)
    }


def kafka_lag(end_offset: Any, latest_offset: Any) -> dict[tuple[str, str], int]:
    """(topic, partition) → latest minus end offset, from a Kafka source progress' offsets JSON."""
    end, latest = _offsets(end_offset), _offsets(latest_offset)
    return {
        (topic, partition): max(0, latest_at - end.get(topic, {}).get(partition, 0))
        for topic, parts in latest.items()
        for partition, latest_at in parts.items()
    }


# How often the driver reads the query's last progress: the gauges are this much behind at most.
PROGRESS_POLL_SECONDS = 1.0


class ProgressMetrics:
    """Copies one query's progress into the gauges, read by polling ``lastProgress`` on a thread.

    Not a ``StreamingQueryListener``: Spark calls a Python listener back through py4j for every
    event, and resolving the event's classes there (a class lookup that misses scans every jar on
    the classpath) was 2% of the driver JVM's time in a profile of a drain, on the path between
    micro-batches. A poll is one call a second, and a progress is read only once.
    """

    def __init__(self, source: str, query: StreamingQuery, interval: float = PROGRESS_POLL_SECONDS) -> None:
        self.source = source
        self.query = query
        self.interval = interval
        self._seen: tuple[Any, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"progress-{source}", daemon=True)

    def start(self) -> ProgressMetrics:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                active = self.query.isActive
                self.poll()
            except Exception as exc:
                # The session stopping under the poll (py4j gone) ends it; nothing else may.
                log.debug("progress poll failed source=%s error=%s", self.source, exc)
                active = False
            if not active:
                return

    def poll(self) -> bool:
        """Record the last progress if it is new; True when it was."""
        progress = self.query.lastProgress
        if progress is None:
            return False
        seen = (progress.batchId, progress.timestamp)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            self.record(progress)
        except Exception:
            # A bad progress must not stop the gauges for the ones after it.
            log.exception("could not record progress source=%s", self.source)
        return True

    def record(self, progress: Any) -> None:
        source = self.source
        INPUT_ROWS_PER_SECOND.labels(source).set(float(progress.inputRowsPerSecond or 0.0))
        PROCESSED_ROWS_PER_SECOND.labels(source).set(float(progress.processedRowsPerSecond or 0.0))
        duration_ms = (progress.durationMs or {}).get("triggerExecution")
        if duration_ms is not None:
            BATCH_DURATION.labels(source).observe(duration_ms / 1000.0)
        for src in progress.sources or []:
            for (topic, partition), lag in kafka_lag(src.endOffset, src.latestOffset).items():
                KAFKA_LAG.labels(source, topic, partition).set(lag)
