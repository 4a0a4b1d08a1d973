"""`restlake run -f` with several sources in one file: parents and their children (``spec.parent``).

Each source keeps its own ``LocalRunner`` (topic, stream job, fetch state); they share one Spark
session. ``--until-caught-up`` runs them one after the other, every parent before its children,
each fetched *and* streamed to Postgres before the next starts: a child's pass reads its parent's
current rows from Postgres, so the parent must have landed first. Continuous mode starts every
stream and polls every source on its own interval; a child then sees its parent's changes on its
first poll after they landed.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restlake.contracts.parents import resolve_parents, run_order
from restlake.runtime.local import LocalRunner, RunSummary
from restlake.stack.manager import StackEndpoints

if TYPE_CHECKING:
    from restlake.jobs.spark.settings import SparkSettings

log = logging.getLogger(__name__)


class LocalGroup:
    """Several sources run on this machine as one: parents first, one Spark session."""

    def __init__(
        self,
        sources: Sequence[Any],
        endpoints: StackEndpoints,
        *,
        jars: list[Path],
        master: str = "local[2]",
        spark: Any = None,
        spark_settings: SparkSettings | None = None,
        remember_fetch_state: bool = True,
    ) -> None:
        # Refused here, before anything starts: a missing parent, its Postgres sink off, a cycle.
        links = resolve_parents(sources)
        self.sources = run_order(sources)
        self.jars = jars
        self.master = master
        self.spark_settings = spark_settings
        self._spark = spark
        self._owns_spark = spark is None
        self.runners = [
            LocalRunner(
                source,
                endpoints,
                jars=jars,
                master=master,
                spark=None,
                remember_fetch_state=remember_fetch_state,
                parent=links.get(source.name),
            )
            for source in self.sources
        ]
        for runner in self.runners:
            runner._owns_spark = False  # the group's session, stopped by the group

    @property
    def spark(self) -> Any:
        if self._spark is None:
            from restlake.jobs.spark.session import build_spark

            # Every source's query runs in this one session, each with micro-batches of its own.
            self._spark = build_spark(
                "restlake-run",
                jars=self.jars,
                master=self.master,
                settings=self.spark_settings,
                # Sized as if every query held the largest batch any of them allows.
                records_per_batch=max(s.spec.stream.max_records_per_batch for s in self.sources),
                streams=len(self.sources),
            )
        return self._spark

    def _share_spark(self) -> None:
        for runner in self.runners:
            runner._spark = self.spark

    def run_until_caught_up(self) -> list[RunSummary]:
        """Each source fetched once and streamed until caught up, parents first; summaries in that order."""
        self._share_spark()
        return [runner.run_until_caught_up() for runner in self.runners]

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Stream every source continuously and poll each on its own interval until SIGINT/SIGTERM."""
        from restlake.jobs.spark.stream import run_stream

        stop = stop or threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        self._share_spark()
        queries = []
        try:
            for runner in self.runners:
                runner.prepare()
                queries.append(run_stream(self.spark, runner.stream_config(available_now=False)))
            due = [0.0] * len(self.runners)
            while not stop.is_set():
                now = time.monotonic()
                for i, runner in enumerate(self.runners):
                    if now < due[i] or stop.is_set():
                        continue
                    stats = runner.fetch_once()
                    log.info("fetch pass: %s", stats.as_dict(), extra={"source": runner.layout.name})
                    poll = runner.source.spec.poll
                    jitter = 1 + random.uniform(-poll.jitter, poll.jitter)
                    due[i] = time.monotonic() + max(1.0, poll.interval.total_seconds() * jitter)
                stop.wait(max(0.2, min(due) - time.monotonic()))
        finally:
            for query in queries:
                query.stop()

    def close(self) -> None:
        if self._spark is not None and self._owns_spark:
            self._spark.stop()
        self._spark = None
