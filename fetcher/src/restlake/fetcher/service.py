"""Many sources in one process: each on its own schedule, sharing a session, a producer and state store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Sequence
from typing import Any

import aiohttp

from restlake.contracts.parents import resolve_parents
from restlake.errors import ConfigError, RestlakeError
from restlake.fetcher.breaker import BreakerRegistry
from restlake.fetcher.children import ChildSourceFetcher, make_fetcher
from restlake.fetcher.client import new_session
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.ops import OpsServer
from restlake.fetcher.parent_rows import ParentRows, PostgresParentRows
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import PostgresStateStore, StateStore
from restlake.kafka_admin import ensure_topic
from restlake.lineage import FetcherRun, LineageEmitter, LineageSettings
from restlake.lineage.fetcher import heartbeat
from restlake.redaction import install_log_redaction, remove_log_redaction
from restlake.settings import DEFAULT_KAFKA_BOOTSTRAP

log = logging.getLogger(__name__)


def next_delay(interval: float, jitter: float, rng: random.Random | None = None) -> float:
    """Seconds from one poll's start to the next: the interval plus up to ``jitter`` of it, at random."""
    draw = (rng or random).uniform(0.0, jitter)
    return interval * (1.0 + draw)


class FetcherService:
    """Runs the fetch loop of every source until stopped; serves the ops endpoints meanwhile.

    Shutdown (``request_stop``, wired to SIGTERM by the CLI) lets each source finish the page it is
    on, confirm delivery and commit its state, then flushes the producer and closes the state store.
    """

    def __init__(
        self,
        sources: Sequence[Any],
        *,
        producer: EnvelopeProducer,
        state_store: StateStore,
        settings: FetcherSettings | None = None,
        metrics: FetcherMetrics | None = None,
        topic_prefix: str = "restlake.",
        kafka_bootstrap: str | None = None,
        create_topics: bool = False,
        topic_partitions: int = 3,
        lineage: LineageEmitter | None = None,
        lineage_settings: LineageSettings | None = None,
        parent_rows: ParentRows | None = None,
    ) -> None:
        names = [s.name for s in sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(
                f"source names must be unique in one fetcher; repeated: {', '.join(duplicates)}"
            )
        self.settings = settings or FetcherSettings()
        self.metrics = metrics or FetcherMetrics()
        self.producer = producer
        self.state_store = state_store
        self.kafka_bootstrap = kafka_bootstrap
        self.create_topics = create_topics
        self.topic_partitions = topic_partitions
        # From RESTLAKE_LINEAGE_* unless given: transport "none" by default, so lineage is opt-in.
        self.lineage_settings = lineage_settings or LineageSettings()
        self.lineage = lineage or LineageEmitter.from_settings(self.lineage_settings)
        self.breakers = BreakerRegistry(
            failure_threshold=self.settings.breaker_failures, cooldown=self.settings.breaker_cooldown
        )
        # spec.parent: each child's parent is found among these sources by name, else in the
        # annotations the operator rendered (its identity and table); refused here if neither.
        links = resolve_parents(sources)
        if links and parent_rows is None:
            if not isinstance(state_store, PostgresStateStore):
                raise ConfigError(
                    "a source with spec.parent reads its parent's records from Postgres: run the "
                    "fetcher with its fetch state in Postgres (RESTLAKE_PG_DSN)"
                )
            parent_rows = PostgresParentRows(state_store.dsn)
        self.parent_rows = parent_rows
        plain = [
            SourceFetcher(
                source,
                producer,
                source.topic(topic_prefix),
                policy=self.settings.retry_policy(),
                state_store=state_store,
                metrics=self.metrics,
                breakers=self.breakers,
                max_body_bytes=self.settings.max_body_bytes,
                checkpoint_pages=self.settings.checkpoint_pages,
                delivery_timeout=self.settings.delivery_timeout,
            )
            for source in sources
        ]
        self.fetchers: list[SourceFetcher | ChildSourceFetcher] = [
            make_fetcher(fetcher, links.get(source.name), parent_rows)
            for fetcher, source in zip(plain, sources, strict=True)
        ]
        self.results: dict[str, list[PassStats]] = {f.name: [] for f in self.fetchers}
        for fetcher in self.fetchers:
            self.metrics.poll_interval.labels(fetcher.name).set(fetcher.spec.poll.interval.total_seconds())
        self._stop = asyncio.Event()
        self.ops: OpsServer | None = None

    def request_stop(self) -> None:
        log.info("shutdown requested: finishing current pages, flushing, saving state")
        self._stop.set()

    async def readiness(self) -> dict[str, bool]:
        """Ready = a Kafka broker answers and the state store is reachable."""
        kafka = await asyncio.to_thread(self.producer.connected, 2.0)
        try:
            await asyncio.wait_for(self.state_store.ping(), timeout=3.0)
            state = True
        except (RestlakeError, TimeoutError):
            state = False
        return {"kafka": kafka, "state_store": state}

    def _provision_topics(self) -> None:
        if not (self.create_topics and self.kafka_bootstrap):
            return
        for fetcher in self.fetchers:
            for topic in (fetcher.topic, fetcher.dead_letter_topic):
                ensure_topic(self.kafka_bootstrap, topic, self.topic_partitions)

    async def _source_loop(
        self, fetcher: SourceFetcher | ChildSourceFetcher, session: aiohttp.ClientSession, once: bool
    ) -> None:
        poll = fetcher.spec.poll
        interval = poll.interval.total_seconds()
        if not once:
            # Spread the first polls too, so a restart does not fire every source at the same instant.
            await self._sleep(random.uniform(0.0, poll.jitter) * interval)
        while not self._stop.is_set():
            started = time.monotonic()
            run = self._lineage_run(fetcher)
            await asyncio.to_thread(run.start)
            try:
                async with heartbeat(
                    run, self.lineage_settings.heartbeat_seconds, self.lineage_settings.heartbeat_event_type
                ):
                    stats = await fetcher.fetch_pass(session, self._stop)
            except Exception as exc:  # one source's bug must not stop the others; retried next time
                # The traceback quotes URLs and arguments verbatim: only its redacted text is logged.
                summary = fetcher.redactor.text(f"{type(exc).__name__}: {exc}")
                log.error(
                    "fetch pass crashed: %s\n%s",
                    summary,
                    fetcher.redactor.text(traceback.format_exc()),
                    extra={"source": fetcher.name},
                )
                stats = PassStats(error=f"fetch pass crashed: {summary}")
                self.metrics.passes.labels(fetcher.name, "crashed").inc()
            if stats.complete:
                await asyncio.to_thread(run.complete, stats.produced)
            else:
                reason = stats.error or ("stopped by shutdown" if stats.stopped else "pass incomplete")
                await asyncio.to_thread(run.fail, reason, stats.produced)
            self.results[fetcher.name].append(stats)
            if once:
                return
            await self._sleep(next_delay(interval, poll.jitter) - (time.monotonic() - started))

    def _lineage_run(self, fetcher: SourceFetcher | ChildSourceFetcher) -> FetcherRun:
        return FetcherRun(
            self.lineage,
            fetcher.name,
            fetcher.spec.request.url,
            # Only a service handed a producer (tests) has none; its lineage still names a broker.
            self.kafka_bootstrap or DEFAULT_KAFKA_BOOTSTRAP,
            fetcher.topic,
        )

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def run(self, *, once: bool = False) -> dict[str, list[PassStats]]:
        """Poll until ``request_stop`` (with ``once``: one pass per source); returns each pass's stats."""
        # The belt under every call site's own redaction: each record of restlake's loggers is
        # scrubbed of every source's current secrets before any handler sees it.
        log_filter = install_log_redaction(self._secret_values)
        try:
            return await self._run(once=once)
        finally:
            remove_log_redaction(log_filter)

    def _secret_values(self) -> list[str]:
        return [value for fetcher in self.fetchers for value in fetcher.redactor.secrets()]

    async def _run(self, *, once: bool) -> dict[str, list[PassStats]]:
        await asyncio.to_thread(self._provision_topics)
        if (ops_port := self.settings.ops_port) is not None:
            self.ops = OpsServer(
                self.metrics.registry, self.readiness, host=self.settings.ops_host, port=ops_port
            )
            await self.ops.start()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.settings.per_host_limit)
        try:
            async with new_session(connector) as session:
                await asyncio.gather(*(self._source_loop(f, session, once) for f in self.fetchers))
        finally:
            try:
                await asyncio.to_thread(self.producer.flush, self.settings.delivery_timeout)
            except RestlakeError as exc:
                log.error("producer flush at shutdown failed: %s", exc)
            await self.state_store.close()
            if self.parent_rows is not None:
                await self.parent_rows.close()
            if self.ops is not None:
                await self.ops.stop()
        return self.results
