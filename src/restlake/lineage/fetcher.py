"""Run events of a fetch pass: input the REST endpoint, output the Kafka topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from restlake.lineage.datasets import BRONZE_FIELDS, http_endpoint, kafka_topic, output_statistics
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.events import EventType, new_run_id, run_event


def fetcher_job_name(source: str) -> str:
    return f"restlake.fetcher.{source}"


@dataclass
class FetcherRun:
    """One fetch pass as an OpenLineage run; ``complete``/``fail`` end it."""

    emitter: LineageEmitter
    source: str
    url: str
    kafka_bootstrap: str
    topic: str
    run_id: str = field(default_factory=new_run_id)

    def event(
        self, event_type: EventType, *, produced: int | None = None, error: str | None = None
    ) -> dict[str, Any]:
        # The topic carries envelopes, whose columns bronze keeps one to one.
        output = kafka_topic(self.kafka_bootstrap, self.topic, BRONZE_FIELDS)
        if produced is not None:
            output["outputFacets"] = {"outputStatistics": output_statistics(produced)}
        return run_event(
            event_type,
            run_id=self.run_id,
            job_namespace=self.emitter.namespace,
            job_name=fetcher_job_name(self.source),
            inputs=[http_endpoint(self.url)],
            outputs=[output],
            error=error,
        )

    def start(self) -> bool:
        return self.emitter.emit(self.event("START"))

    def heartbeat(self, event_type: EventType = "OTHER") -> bool:
        return self.emitter.emit(self.event(event_type))

    def complete(self, produced: int) -> bool:
        return self.emitter.emit(self.event("COMPLETE", produced=produced))

    def fail(self, error: str, produced: int = 0) -> bool:
        return self.emitter.emit(self.event("FAIL", produced=produced, error=error))


@contextlib.asynccontextmanager
async def heartbeat(run: FetcherRun, seconds: float, event_type: EventType = "OTHER") -> AsyncIterator[None]:
    """Emit a heartbeat every ``seconds`` while the body runs (a pass of a large API may take hours)."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(seconds)
            await asyncio.to_thread(run.heartbeat, event_type)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
