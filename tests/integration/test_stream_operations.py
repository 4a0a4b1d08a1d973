"""Operating the job as a process: Prometheus metrics from the driver, and a graceful SIGTERM."""

from __future__ import annotations

import re
import signal
import urllib.request
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession

from restlake.jobs.spark import metrics as prom
from restlake.stack.manager import StackEndpoints
from restlake.stack.state import pick_free_ports

from .fixtures_stream import StreamJob, tail, wait_for

pytestmark = pytest.mark.integration


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.index("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_are_served_and_sigterm_stops_cleanly(
    stack: StackEndpoints, spark: SparkSession, spark_jars: list[Path], tmp_path: Path
) -> None:
    port = pick_free_ports(1)[0]
    job = StreamJob(stack, tmp_path, processing_time="1 second", max_offsets_per_trigger=5, metrics_port=port)
    n = 12
    job.send(*[job.envelope(i, name=f"item {i}") for i in range(n)])
    log_file = tmp_path / "driver.log"
    proc = job.start_process(job.write_config(tmp_path / "job.json"), spark_jars, log_file=log_file)
    try:
        wait_for(lambda: len(job.postgres()) == n or proc.poll() is not None, 300, "all records merged")
        assert proc.poll() is None, tail(log_file)

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()

        # Counters follow the Postgres commit by a moment; progress (rates, lag) is polled from the
        # query, a second or so after the batch.
        # Lag is latest minus end offset of the last progress: 0 once the batch that caught up reports.
        def settled() -> bool:
            text = scrape()
            merged = sample(text, "restlake_stream_rows_merged_total", source=job.source, op="inserted")
            lags = [
                sample(text, "restlake_stream_kafka_lag_records", source=job.source, partition=str(p))
                for p in range(3)
            ]
            return merged == n and lags == [0.0, 0.0, 0.0]

        wait_for(settled, 90, "metrics of every batch, lag 0 on every partition")
        # The kubelet's probes: a local[N] driver has no executor to wait for, so a running query is ready.
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                assert response.status == 200, path
        text = scrape()
        src = job.source
        assert sample(text, "restlake_stream_rows_merged_total", source=src, op="inserted") == n
        assert sample(text, "restlake_stream_rows_read_total", source=src) == n
        assert sample(text, "restlake_stream_bronze_rows_written_total", source=src) == n
        assert sample(text, "restlake_stream_rows_quarantined_total", source=src) == 0
        assert sample(text, "restlake_stream_last_committed_batch_id", source=src) == max(
            b for _, b, *_ in job.ledger()
        )
        assert sample(text, "restlake_stream_batch_duration_seconds_count", source=src) >= 1
        assert sample(text, "restlake_stream_input_rows_per_second", source=src) is not None
        assert sample(text, "restlake_stream_processed_rows_per_second", source=src) is not None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, tail(log_file)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # Consistent after the stop: the checkpoint holds every batch, so a restart reads nothing.
    again = job.run(spark)
    assert (again.batches, again.rows_read) == (0, 0)
    assert len(job.bronze(spark)) == n and len(job.postgres()) == n
    ledger = job.ledger()
    assert sum(rows_in for *_, rows_in, _ in ledger) == n


def test_progress_is_recorded_once_per_progress_and_polling_ends_with_the_query(spark: SparkSession) -> None:
    source = f"progress-{uuid.uuid4().hex[:8]}"
    query = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", 50)
        .load()
        .writeStream.format("noop")
        .trigger(processingTime="200 milliseconds")
        .start()
    )
    poller = prom.ProgressMetrics(source, query, interval=0.05).start()

    def observed() -> float:
        labels = {"source": source}
        return REGISTRY.get_sample_value("restlake_stream_batch_duration_seconds_count", labels) or 0.0

    try:
        wait_for(lambda: observed() >= 3, 120, "three progresses recorded")
    finally:
        query.stop()
    poller.join(timeout=30)
    assert not poller.alive, "the poll thread outlives its query"
    # Each progress once: no more observations than distinct progresses the query reported.
    assert observed() <= len({(p.batchId, p.timestamp) for p in query.recentProgress})
    # Read again after the stop: the last progress was already recorded, so nothing is added.
    before = observed()
    assert poller.poll() is False
    assert observed() == before
    rate = REGISTRY.get_sample_value("restlake_stream_processed_rows_per_second", {"source": source})
    assert rate is not None and rate > 0
