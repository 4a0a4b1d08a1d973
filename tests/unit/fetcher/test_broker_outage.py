"""A broker outage: back-pressure must not block the event loop; a crashed pass is counted.

The broker here is really down (a closed loopback port): librdkafka queues locally until its queue
is full, which is exactly the state the fetcher used to busy-wait in on the event loop.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.producer import EnvelopeProducer, RecordTooLargeError
from restlake.fetcher.service import FetcherService
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import MemoryStateStore

from .local_api import serving

RECORDS_PER_PAGE = 50


def _dead_broker() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"  # closed when the block ends: nobody listens


def _source(name: str, base: str) -> IngestionSource:
    document = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name},
        "spec": {
            "request": {"url": f"{base}/items"},
            "records": {"path": "$.items", "idPath": "$.id"},
            "pagination": {"type": "pageNumber", "size": RECORDS_PER_PAGE, "sizeParam": "size"},
            "poll": {"interval": "1h"},
            "rateLimit": {"requestsPerSecond": 1000, "burst": 1000},
        },
    }
    return parse_source(document, "test")


def _api() -> web.Application:
    async def items(request: web.Request) -> web.Response:
        page = int(request.query["page"])
        rows = [{"id": page * 1000 + i} for i in range(RECORDS_PER_PAGE)] if page <= 40 else []
        return web.json_response({"items": rows})

    app = web.Application()
    app.router.add_get("/items", items)
    return app


def test_healthz_answers_while_the_broker_is_down_and_the_pass_fails_without_advancing() -> None:
    producer = EnvelopeProducer(
        _dead_broker(),
        # A small local queue fills at once; a short timeout lets queued records fail instead of
        # waiting two minutes, so the pass ends (with a delivery error) within the test.
        extra={"queue.buffering.max.messages": 20, "message.timeout.ms": 1500, "log_level": 0},
    )
    metrics = FetcherMetrics()

    async def run() -> tuple[list[float], Any]:
        async with serving(_api()) as base:
            service = FetcherService(
                [_source("outage", base)],
                producer=producer,
                state_store=MemoryStateStore(),
                settings=FetcherSettings(ops_port=0, delivery_timeout=10.0),
                metrics=metrics,
            )
            task = asyncio.create_task(service.run(once=True))
            while service.ops is None or service.ops.base_url is None or producer.stats.produced < 20:
                await asyncio.sleep(0.05)
            latencies = []
            async with aiohttp.ClientSession() as session:
                for _ in range(3):  # the queue stays full for the 1.5 s of message.timeout.ms
                    started = time.monotonic()
                    async with session.get(f"{service.ops.base_url}/healthz") as resp:
                        assert resp.status == 200
                    latencies.append(time.monotonic() - started)
                    await asyncio.sleep(0.1)
            results = await asyncio.wait_for(task, timeout=60)
            return latencies, results

    latencies, results = asyncio.run(run())
    # A blocked loop would answer after the queue drains (seconds), or not at all.
    assert max(latencies) < 1.0, latencies
    (stats,) = results["outage"]
    assert not stats.complete and stats.error is not None
    assert stats.error.startswith("Kafka rejected 20 record(s) and the local queue is full")
    assert stats.produced == 0
    assert (
        metrics.registry.get_sample_value(
            "restlake_fetcher_passes_total", {"source": "outage", "outcome": "error"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value("restlake_fetcher_records_produced_total", {"source": "outage"})
        == 0
    )


def test_a_record_over_the_producer_limit_raises_with_its_size_and_the_limit() -> None:
    producer = EnvelopeProducer(_dead_broker(), extra={"message.max.bytes": 10_000, "log_level": 0})
    envelope = Envelope.wrap(
        source="s",
        payload={"id": 1, "blob": "x" * 20_000},
        external_id="1",
        version=None,
        request=RequestInfo(url="http://api/items", status=200),
    )
    with pytest.raises(
        RecordTooLargeError, match=r"record of \d+ bytes .* exceeds the producer's limit of 10000 bytes"
    ) as caught:
        asyncio.run(producer.publish("t", envelope))
    assert caught.value.limit == 10_000 and caught.value.size > 20_000
    assert caught.value.key == envelope.kafka_key()
    assert producer.stats.produced == 0


def test_a_crashed_pass_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = FetcherMetrics()
    service = FetcherService(
        [_source("crashy", "http://127.0.0.1:9")],
        producer=EnvelopeProducer(_dead_broker(), extra={"log_level": 0}),
        state_store=MemoryStateStore(),
        settings=FetcherSettings(ops_port=None),
        metrics=metrics,
    )

    async def crash(*_: Any, **__: Any) -> None:
        # Stands in for a bug in the pass: nothing in the fetcher is expected to raise this.
        raise RuntimeError("a bug")

    monkeypatch.setattr(service.fetchers[0], "fetch_pass", crash)
    results = asyncio.run(service.run(once=True))
    assert results["crashy"][0].error == "fetch pass crashed: RuntimeError: a bug"
    value = metrics.registry.get_sample_value
    assert value("restlake_fetcher_passes_total", {"source": "crashy", "outcome": "crashed"}) == 1
    assert value("restlake_fetcher_passes_total", {"source": "crashy", "outcome": "error"}) == 0
