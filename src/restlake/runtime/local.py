"""`restlake run`: one source on one machine — local stack, fetcher and stream job in one process."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from restlake.contracts.parents import ParentLink
from restlake.errors import ConfigError
from restlake.fetcher.children import make_fetcher
from restlake.fetcher.client import new_session
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.parent_rows import PostgresParentRows
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.state import PostgresStateStore
from restlake.kafka_admin import ensure_topic
from restlake.postgres import migrations
from restlake.postgres.identifiers import TableName
from restlake.runtime.malloc_arenas import cap_malloc_arenas
from restlake.settings import ExternalEndpoints, KafkaSettings, StackSettings
from restlake.stack.manager import LocalStack, StackEndpoints

if TYPE_CHECKING:
    from restlake.jobs.spark.settings import SparkSettings

log = logging.getLogger(__name__)


def resolve_endpoints(
    state_dir: Path | None = None, given: ExternalEndpoints | None = None
) -> StackEndpoints:
    """Use the services named in the environment (``given``) when all three are set, else start the
    local stack."""
    present = (given if given is not None else ExternalEndpoints()).given()
    names = ("RESTLAKE_KAFKA_BOOTSTRAP", "RESTLAKE_PG_DSN", "RESTLAKE_LAKE_ROOT")
    if len(present) == len(names):
        return StackEndpoints(
            kafka_bootstrap=present["RESTLAKE_KAFKA_BOOTSTRAP"],
            pg_dsn=present["RESTLAKE_PG_DSN"],
            lake_root=present["RESTLAKE_LAKE_ROOT"],
        )
    if present:
        missing = sorted(name for name in names if name not in present)
        raise ConfigError(
            f"{', '.join(n for n in names if n in present)} set but {', '.join(missing)} not: set all three "
            "to use external services, or none to use the local stack"
        )
    return LocalStack(state_dir or StackSettings().state_dir).up()


@dataclass
class SourceLayout:
    """Where one source's data lives, derived from its spec and the stack's endpoints."""

    name: str
    topic: str
    bronze_path: str
    quarantine_path: str
    checkpoint_path: str
    pg_table: str

    @classmethod
    def of(cls, source: Any, endpoints: StackEndpoints) -> SourceLayout:
        root = endpoints.lake_root
        return cls(
            name=source.name,
            topic=source.topic(KafkaSettings().topic_prefix),
            bronze_path=source.bronze_path(root),
            quarantine_path=source.quarantine_path(root),
            checkpoint_path=source.checkpoint_path(root),
            pg_table=source.spec.sinks.postgres.table,
        )


@dataclass
class RunSummary:
    source: str
    fetch: PassStats
    stream: dict[str, Any] = field(default_factory=dict)
    bronze_rows: int = 0
    postgres_rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records_fetched": self.fetch.records,
            "records_produced": self.fetch.produced,
            "pages": self.fetch.pages,
            "requests": self.fetch.requests,
            "not_modified": self.fetch.not_modified,
            "bad_pages": self.fetch.bad_pages,
            "dead_letters": self.fetch.dead_letters,
            "fetch_complete": self.fetch.complete,
            "fetch_error": self.fetch.error,
            "stream": self.stream,
            "bronze_rows": self.bronze_rows,
            "postgres_rows": self.postgres_rows,
            "quarantined": self.quarantined,
            "seconds": round(self.seconds, 3),
        }


class LocalRunner:
    """Runs one source against the given endpoints; owns the Spark session and the producer."""

    def __init__(
        self,
        source: Any,
        endpoints: StackEndpoints,
        *,
        jars: list[Path],
        master: str = "local[2]",
        spark: Any = None,
        spark_settings: SparkSettings | None = None,
        remember_fetch_state: bool = True,
        parent: ParentLink | None = None,
    ):
        # Before the runner starts any thread (fetch pass, stream start, merges).
        cap_malloc_arenas()
        self.source = source
        # spec.parent: where the parent's records are read (``contracts.parents.resolve_parents``).
        self.parent = parent
        # On: validators and watermark persist in raw.fetch_state, so a re-run sends conditional
        # requests and fetches only what changed. Off: every pass refetches everything (same keys).
        self.remember_fetch_state = remember_fetch_state
        self.endpoints = endpoints
        self.layout = SourceLayout.of(source, endpoints)
        self.jars = jars
        self.master = master
        # For the session built here; None reads RESTLAKE_SPARK_* when it is built.
        self.spark_settings = spark_settings
        self._spark: Any = spark
        # A session handed in belongs to the caller (tests share one); only stop the one we built.
        self._owns_spark = spark is None
        # One producer and one metrics registry for every pass: their counters feed live progress.
        self.fetcher_metrics = FetcherMetrics()
        self._producer: EnvelopeProducer | None = None

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self) -> None:
        migrations.apply(self.endpoints.pg_dsn)
        partitions = (
            self.source.spec.kafka.partitions if self.source.spec.kafka else None
        ) or KafkaSettings().partitions
        ensure_topic(self.endpoints.kafka_bootstrap, self.layout.topic, partitions)

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from restlake.jobs.spark.session import build_spark

            self._spark = build_spark(
                f"restlake-{self.layout.name}",
                jars=self.jars,
                master=self.master,
                settings=self.spark_settings,
                records_per_batch=self.source.spec.stream.max_records_per_batch,
            )
        return self._spark

    def stream_config(self, *, available_now: bool) -> Any:
        from restlake.contracts.stream_job import StreamJobConfig

        return StreamJobConfig.for_source(
            self.source,
            kafka_bootstrap=self.endpoints.kafka_bootstrap,
            topic=self.layout.topic,
            lake_root=self.endpoints.lake_root,
            pg_dsn=self.endpoints.pg_dsn,
            available_now=available_now,
        )

    # -- fetch ----------------------------------------------------------------------------------
    @property
    def producer(self) -> EnvelopeProducer:
        if self._producer is None:
            self._producer = EnvelopeProducer(
                self.endpoints.kafka_bootstrap, client_id=f"restlake-fetcher-{self.layout.name}"
            )
        return self._producer

    async def _fetch_pass(self) -> PassStats:
        store = PostgresStateStore(self.endpoints.pg_dsn) if self.remember_fetch_state else None
        plain = SourceFetcher(
            self.source, self.producer, self.layout.topic, state_store=store, metrics=self.fetcher_metrics
        )
        parent_rows = PostgresParentRows(self.endpoints.pg_dsn) if self.parent is not None else None
        fetcher = make_fetcher(plain, self.parent, parent_rows)
        try:
            async with new_session() as session:
                return await fetcher.fetch_pass(session)
        finally:
            if store is not None:
                await store.close()
            if parent_rows is not None:
                await parent_rows.close()

    def fetch_once(self) -> PassStats:
        return asyncio.run(self._fetch_pass())

    # -- run ------------------------------------------------------------------------------------
    def run_until_caught_up(self) -> RunSummary:
        """One fetch pass, and the stream job over everything it produced (and anything older).

        The stream starts beside the pass, on another thread: Spark's start (JVM, session, query:
        20-30 s) and the first batches overlap the fetch instead of following it. Once the pass is
        done the query processes what the topic holds and stops.
        """
        from restlake.jobs.spark.stream import CatchUp

        started = time.monotonic()
        self.prepare()
        with ThreadPoolExecutor(1, thread_name_prefix=f"stream-start-{self.layout.name}") as pool:
            starting = pool.submit(lambda: CatchUp(self.spark, self.stream_config(available_now=False)))
            try:
                fetch = self.fetch_once()
            except BaseException:
                _abandon(starting)
                raise
            catch_up = starting.result()
        stream = catch_up.finish()
        summary = RunSummary(source=self.layout.name, fetch=fetch, stream=_as_dict(stream))
        self.count_into(summary)
        summary.seconds = time.monotonic() - started
        return summary

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Poll on the spec's interval and stream continuously until SIGINT/SIGTERM."""
        from restlake.jobs.spark.stream import run_stream

        stop = stop or threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self.prepare()
        query = run_stream(self.spark, self.stream_config(available_now=False))
        poll = self.source.spec.poll
        try:
            while not stop.is_set():
                stats = self.fetch_once()
                log.info("fetch pass: %s", stats.as_dict(), extra={"source": self.layout.name})
                interval = poll.interval.total_seconds() * (1 + random.uniform(-poll.jitter, poll.jitter))
                stop.wait(max(1.0, interval))
        finally:
            query.stop()

    def count_into(self, summary: RunSummary) -> None:
        summary.bronze_rows = self._delta_count(self.layout.bronze_path)
        summary.quarantined = self._delta_count(self.layout.quarantine_path)
        with psycopg.connect(self.endpoints.pg_dsn) as conn:
            query = sql.SQL("SELECT count(*) FROM {} WHERE source = %s").format(
                TableName.parse(self.layout.pg_table).identifier()
            )
            row = conn.execute(query, (self.layout.name,)).fetchone()
            summary.postgres_rows = int(row[0]) if row else 0

    def _delta_count(self, path: str) -> int:
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        if not DeltaTable.isDeltaTable(self.spark, path):
            return 0
        return self.spark.read.format("delta").load(path).where(F.col("source") == self.layout.name).count()

    def close(self) -> None:
        if self._spark is not None and self._owns_spark:
            self._spark.stop()
        self._spark = None


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return dict(value)


def _abandon(starting: Future[Any]) -> None:
    """Stop a catch-up query whose fetch pass failed, once it has started; its own start error is
    secondary to the fetch's and only logged."""
    try:
        starting.result().abandon()
    except Exception as exc:
        log.warning("stream start failed too: %s", exc)
