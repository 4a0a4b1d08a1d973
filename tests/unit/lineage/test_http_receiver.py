"""The http transport against a real OpenLineage HTTP receiver on loopback: what Marquez (or any
receiver) gets from a fetch pass and a stream batch forms the graph
REST endpoint -> fetcher -> topic -> stream -> bronze + quarantine + Postgres."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from restlake.lineage import BatchCounts, FetcherRun, LineageEmitter, StreamTargets, emit_stream_batch
from restlake.lineage.transports.http import HttpTransport

BOOTSTRAP = "127.0.0.1:9092"
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
API = "http://127.0.0.1:8085/v1/cursor/items"


class Receiver:
    """Keeps every event POSTed to /api/v1/lineage with its Authorization header, like Marquez's API."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path != "/api/v1/lineage":
                    self.send_response(404)
                else:
                    receiver.events.append(json.loads(body))
                    receiver.authorization.append(self.headers.get("Authorization"))
                    self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _edges(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Dataset -> job and job -> dataset edges, named as Marquez's lineage graph names its nodes."""
    edges = set()
    for event in events:
        job = f"job:{event['job']['namespace']}:{event['job']['name']}"
        for ds in event.get("inputs", []):
            edges.add((f"dataset:{ds['namespace']}:{ds['name']}", job))
        for ds in event.get("outputs", []):
            edges.add((job, f"dataset:{ds['namespace']}:{ds['name']}"))
    return edges


def test_fetch_and_stream_events_reach_the_receiver_and_form_the_graph(receiver: Receiver) -> None:
    emitter = LineageEmitter(HttpTransport(receiver.url, "api/v1/lineage", SecretStr("lineage-token"), 5.0))
    run = FetcherRun(emitter, "orders", API, BOOTSTRAP, "restlake.orders")
    assert run.start() and run.complete(produced=12)
    targets = StreamTargets(
        source="orders",
        kafka_bootstrap=BOOTSTRAP,
        topic="restlake.orders",
        bronze_uri="/lake/bronze/orders",
        quarantine_uri="/lake/quarantine/orders",
        pg_dsn=PG_DSN,
    )
    emit_stream_batch(emitter, targets, BatchCounts(12, 1, 11))
    assert emitter.failures == 0

    assert [e["eventType"] for e in receiver.events][:2] == ["START", "COMPLETE"]
    assert set(receiver.authorization) == {"Bearer lineage-token"}
    edges = _edges(receiver.events)
    fetcher, stream = "job:restlake:restlake.fetcher.orders", "job:restlake:restlake.stream.orders"
    topic = f"dataset:kafka://{BOOTSTRAP}:restlake.orders"
    assert {
        ("dataset:http://127.0.0.1:8085:/v1/cursor/items", fetcher),
        (fetcher, topic),
        (topic, stream),
        (stream, "dataset:file:/lake/bronze/orders"),
        (stream, "dataset:file:/lake/quarantine/orders"),
        (stream, "dataset:postgres://127.0.0.1:5432:postgres.raw.api_events"),
    } <= edges, sorted(edges)


def test_a_receiver_that_is_down_counts_a_failure_and_raises_nothing(receiver: Receiver) -> None:
    url = receiver.url
    receiver.server.shutdown()
    receiver.server.server_close()
    emitter = LineageEmitter(HttpTransport(url, "api/v1/lineage", None, 2.0))
    assert not FetcherRun(emitter, "orders", API, BOOTSTRAP, "restlake.orders").start()
    assert emitter.failures == 1
