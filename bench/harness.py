"""A live pipeline for the end-to-end cases: demo API (real-time growth) → fetcher → Kafka → stream job.

- The demo API runs in its own process, appending ``rate`` new records a second.
- The fetcher runs in a thread of this process: incremental passes (``since`` watermark) back to
  back, so a record is fetched within about one pass of its creation. Its producer records every
  external id it publishes, which is the ground truth for lag and loss.
- The stream job is the real ``python -m restlake.jobs.spark.stream --config …`` in its own session
  (process group), so a case can SIGKILL the whole driver (Python and its JVM) like a node loss.
- A watcher thread polls Postgres every ``poll_s`` for rows it has not seen (``id`` is a bigserial
  and the job is the only writer, so ``id > last`` finds exactly the new rows) and stamps each one
  with the time it became visible; latency per record = visible - ``fetched_at`` of that row.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.common import BackgroundPoller, Context
from bench.sources import demo_source
from restlake.contracts.envelope import Envelope
from restlake.contracts.source.stream import DEFAULT_TRIGGER, spark_interval
from restlake.demoapi.process import start_demo_api_process, stop_demo_api_process
from restlake.fetcher.poller import SourceFetcher
from restlake.fetcher.producer import DeliveryTracker, EnvelopeProducer
from restlake.kafka_admin import ensure_topic
from restlake.postgres import migrations

log = logging.getLogger("bench.harness")


class TracingProducer(EnvelopeProducer):
    """An EnvelopeProducer that remembers which external ids it published (the expected set)."""

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        super().__init__(bootstrap, **kwargs)
        self.ids: set[str] = set()

    async def publish(self, topic: str, envelope: Envelope, tracker: DeliveryTracker | None = None) -> None:
        await super().publish(topic, envelope, tracker)
        self.ids.add(envelope.external_id)


@dataclass
class Watcher(BackgroundPoller):
    """Polls Postgres for newly visible rows of one source and keeps per-record latencies."""

    dsn: str
    source: str
    poll_s: float = 0.1
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (fetched_at epoch, latency s)
    seen: int = 0

    def _run(self) -> None:
        last_id = 0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT id, fetched_at FROM raw.api_events WHERE source = %s AND id > %s ORDER BY id",
                    (self.source, last_id),
                ).fetchall()
                now = time.time()
                for row_id, fetched_at in rows:
                    ts = fetched_at.timestamp()
                    self.latencies.append((ts, now - ts))
                    last_id = max(last_id, row_id)
                self.seen += len(rows)
                self._stop.wait(self.poll_s)


class StreamProcess:
    """The stream job as a subprocess in its own session, so SIGKILL takes the JVM down with it."""

    def __init__(
        self,
        ctx: Context,
        config: dict[str, Any],
        log_path: Path,
        master: str = "local[2]",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.ctx = ctx
        self.extra_args = extra_args
        self.config_path = log_path.with_suffix(".json")
        self.config_path.write_text(json.dumps(config), encoding="utf-8")
        self.log_path = log_path
        self.master = master
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log_path.open("ab")
        cmd = [
            sys.executable,
            "-m",
            "restlake.jobs.spark.stream",
            "--config",
            str(self.config_path),
            "--master",
            self.master,
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.ctx.child_env(),
            start_new_session=True,
            # The run's own folder: what Spark writes relative to its working directory
            # (spark-warehouse/, derby.log) stays with the run, not in the checkout.
            cwd=self.ctx.work_dir,
        )
        out.close()

    def kill(self) -> None:
        """SIGKILL the driver's whole process group: Python, the JVM and any Python workers."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None


def stream_config(ctx: Context, name: str, **overrides: Any) -> dict[str, Any]:
    root = ctx.lake_root.rstrip("/")
    config: dict[str, Any] = {
        "source": name,
        "topic": f"restlake.{name}",
        "kafka_bootstrap": ctx.kafka_bootstrap,
        "bronze_path": f"{root}/bench/{name}/bronze",
        "quarantine_path": f"{root}/bench/{name}/quarantine",
        "checkpoint_path": f"{root}/bench/{name}/checkpoint",
        "pg_dsn": ctx.pg_dsn,
        "pg_table": "raw.api_events",
        # The product's default (spec.stream.trigger), so latency is measured as a user gets it.
        "processing_time": spark_interval(DEFAULT_TRIGGER),
    }
    config.update(overrides)
    return config


class Pipeline:
    """Demo API at ``rate`` records/s, the fetcher thread and the stream process for one source."""

    def __init__(
        self, ctx: Context, name: str, rate: float, *, partitions: int = 2, master: str = "local[2]"
    ):
        self.ctx = ctx
        self.name = name
        self.rate = rate
        self.partitions = partitions
        self.master = master
        self.topic = f"restlake.{name}"
        self.watcher = Watcher(ctx.pg_dsn, name)
        self.producer: TracingProducer | None = None
        self.stream: StreamProcess | None = None
        self.api: subprocess.Popen[str] | None = None
        self._fetch_stop = threading.Event()
        self._fetch_thread: threading.Thread | None = None
        self.fetch_passes = 0
        self.fetch_errors: list[str] = []

    # -- lifecycle --------------------------------------------------------------------------------
    def start_stream(self) -> None:
        migrations.apply(self.ctx.pg_dsn)
        ensure_topic(self.ctx.kafka_bootstrap, self.topic, self.partitions)
        self.stream = StreamProcess(
            self.ctx,
            stream_config(self.ctx, self.name),
            self.ctx.work_dir / f"stream-{self.name}.log",
            master=self.master,
        )
        self.stream.start()

    def wait_stream_ready(self, timeout: float = 180.0) -> float:
        """Block until the job committed its first batch (ledger row); returns seconds waited."""
        started = time.monotonic()
        with psycopg.connect(self.ctx.pg_dsn, autocommit=True) as conn:
            while time.monotonic() - started < timeout:
                row = conn.execute(
                    "SELECT count(*) FROM raw.ingest_batches WHERE source = %s", (self.name,)
                ).fetchone()
                if row and row[0] > 0:
                    return time.monotonic() - started
                if (
                    self.stream is not None
                    and self.stream.proc is not None
                    and self.stream.proc.poll() is not None
                ):
                    raise RuntimeError(f"stream job exited early; see {self.stream.log_path}")
                time.sleep(0.25)
        raise RuntimeError(f"stream job committed no batch within {timeout}s; see {self.ctx.work_dir}")

    def start_source(self) -> None:
        per_minute = self.rate * 60
        args = [
            "--records",
            "0",
            "--seed",
            "7",
            "--update-fraction",
            "0",
            "--growth-per-minute",
            str(per_minute),
        ]
        self.api, base_url = start_demo_api_process(args, timeout=120.0)
        self.producer = TracingProducer(self.ctx.kafka_bootstrap, client_id=f"bench-{self.name}")
        fetcher = SourceFetcher(demo_source(self.name, base_url, incremental=True), self.producer, self.topic)
        self._fetch_thread = threading.Thread(target=self._fetch_loop, args=(fetcher,), daemon=True)
        self._fetch_thread.start()
        self.watcher.start()

    def _fetch_loop(self, fetcher: SourceFetcher) -> None:
        async def loop() -> None:
            async with aiohttp.ClientSession() as session:
                while not self._fetch_stop.is_set():
                    stats = await fetcher.fetch_pass(session)
                    self.fetch_passes += 1
                    if stats.error:
                        self.fetch_errors.append(stats.error)
                    # Back to back, with a short breath: a new tick lands every second at most.
                    await asyncio.sleep(0.2)

        asyncio.run(loop())

    def stop_source(self) -> None:
        self._fetch_stop.set()
        if self._fetch_thread is not None:
            self._fetch_thread.join(120)
        if self.api is not None:
            stop_demo_api_process(self.api)
            self.api = None

    def lag(self) -> int:
        produced = len(self.producer.ids) if self.producer is not None else 0
        return produced - self.watcher.seen

    def drain(self, timeout: float) -> bool:
        """After stop_source: wait until Postgres holds every record produced."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lag() <= 0:
                return True
            time.sleep(0.5)
        return False

    def close(self) -> None:
        self.stop_source()
        if self.stream is not None:
            self.stream.stop()
        self.watcher.stop()

    # -- checks -----------------------------------------------------------------------------------
    def postgres_counts(self) -> dict[str, int]:
        with psycopg.connect(self.ctx.pg_dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT external_id) FROM raw.api_events WHERE source = %s",
                (self.name,),
            ).fetchone()
        rows, distinct = (int(row[0]), int(row[1])) if row else (0, 0)
        expected = self.producer.ids if self.producer is not None else set()
        return {
            "rows": rows,
            "duplicates": rows - distinct,
            "expected": len(expected),
            "missing": max(0, len(expected) - distinct),
        }

    def bronze_duplicates(self) -> dict[str, int]:
        """Duplicate idempotency keys in bronze, read from the Delta log's live files with pyarrow."""
        return delta_key_counts(Path(stream_config(self.ctx, self.name)["bronze_path"]))


def delta_key_counts(table: Path) -> dict[str, int]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    log_dir = table / "_delta_log"
    live: set[str] = set()
    for entry in sorted(log_dir.glob("*.json")):
        for line in entry.read_text(encoding="utf-8").splitlines():
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    keys = []
    for rel in live:
        keys.append(pq.read_table(table / rel, columns=["idempotency_key"]).column(0))
    if not keys:
        return {"rows": 0, "duplicates": 0}
    import pyarrow as pa

    column = pa.chunked_array([c for k in keys for c in k.chunks])
    return {"rows": len(column), "duplicates": len(column) - len(pc.unique(column))}


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    if not values:
        return {f"p{p}": None for p in points} | {"max": None, "n": 0}
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for p in points:
        idx = min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))
        out[f"p{p}"] = round(ordered[idx], 3)
    out["max"] = round(ordered[-1], 3)
    out["n"] = len(ordered)
    return out


def now_epoch() -> float:
    return datetime.now(UTC).timestamp()
