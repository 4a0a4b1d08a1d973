"""The hostile-API corpus: one local server with a route per hostile behaviour, the real fetcher, Kafka.

Every case serves three pages of the same shape (2, 2 and 1 records, page size 2) and turns hostile
on page 2, or everywhere for the pagination cases. All cases share one topic and one dead-letter
topic, read once at the end, so the whole corpus costs one module fixture. Each case asserts: no
exception escapes ``fetch_pass``; the exact number of records that reached Kafka; the exact
dead-letter reasons; and, for a page the fetcher gave up on, that the source goes on: once the
server heals, the next pass ingests the later pages (every id, exactly).

Counts are asserted in Kafka for every case, and in Postgres and bronze for one case of each kind
(a bad page, an oversized record, a record without id, a future cursor): the stream job runs one
query per source, and 36 of them would cost minutes.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from confluent_kafka.admin import AdminClient, NewTopic
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.fetcher.client import RetryPolicy
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.jobs.spark.config import StreamJobConfig
from restlake.jobs.spark.stream import run_until_caught_up
from restlake.kafka_admin import ensure_topic
from restlake.kafka_logging import client_config
from restlake.stack.manager import StackEndpoints

from .kafka_topic import read_topic

pytestmark = pytest.mark.integration
LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2

RETRIES = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.01)
MAX_BODY = 4 * 1024 * 1024
ALL_IDS = {"1-0", "1-1", "2-0", "2-1", "3-0"}
SANE_TOP = "2026-01-03T00:00:00Z"  # the largest updated_at of the normal pages


def records(page: int) -> list[dict[str, Any]]:
    count = {1: 2, 2: 2, 3: 1}.get(page, 0)
    return [{"id": f"{page}-{i}", "updated_at": f"2026-01-0{page}T00:00:00Z", "n": i} for i in range(count)]


def body(page: int, extra: list[Any] | None = None, **fields: Any) -> web.Response:
    return web.json_response({"items": records(page) + (extra or []), "total": 5, **fields})


@dataclass
class Served:
    """What the server saw of one case, and whether it has healed."""

    healed: bool = False
    hits: Counter[int] = field(default_factory=Counter)
    params: list[dict[str, str]] = field(default_factory=list)


Handler = Callable[[web.Request, int, Served], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass(frozen=True)
class Case:
    hostile: Handler  # answers page 2 until healed (every page when ``every_page``)
    kafka: int  # records in the topic after the first pass
    dlq: tuple[str, ...] = ()  # dead-letter reasons after the first pass
    attempts: int | None = None  # requests the dead-lettered page took
    complete: bool = False
    heal: bool = False  # heal, run again, expect every id of the three pages
    error: str | None = None  # in the first pass's error
    spec: dict[str, Any] = field(default_factory=dict)
    every_page: bool = False
    producer: dict[str, Any] | None = None  # a producer of its own, with these settings
    topic_config: dict[str, str] | None = None  # a topic of its own, with these settings


def status(code: int, **headers: str) -> Handler:
    return lambda request, page, served: web.Response(status=code, headers=headers)


def raw(payload: bytes, content_type: str = "application/json", **headers: str) -> Handler:
    return lambda request, page, served: web.Response(
        body=payload, headers={"Content-Type": content_type, **headers}
    )


def bad_page(reason: str, attempts: int, **extra: Any) -> dict[str, Any]:
    return {"kafka": 2, "dlq": (reason,), "attempts": attempts, "heal": True, **extra}


def with_records(*extra: Any) -> Handler:
    return lambda request, page, served: body(page, list(extra))


def transient(failures: int, code: int, **headers: str) -> Handler:
    def answer(request: web.Request, page: int, served: Served) -> web.Response:
        if served.hits[page] <= failures:
            return web.Response(status=code, headers=headers)
        return body(page)

    return answer


async def slow(request: web.Request, page: int, served: Served) -> web.Response:
    await asyncio.sleep(2)
    return body(page)


async def reset(request: web.Request, page: int, served: Served) -> web.Response:
    assert request.transport is not None
    request.transport.close()
    await asyncio.sleep(0.1)
    return body(page)


def same_page(request: web.Request, page: int, served: Served) -> web.Response:
    return body(1)  # the page parameter is ignored


def endless(request: web.Request, page: int, served: Served) -> web.Response:
    rows = [{"id": f"{page}-{i}", "n": i} for i in range(2)]
    return web.json_response({"items": rows})


def link_loop(request: web.Request, page: int, served: Served) -> web.Response:
    target = 2 if page == 1 else 1
    response = body(page)
    response.headers["Link"] = f'<{request.url.with_query({"page": str(target)})}>; rel="next"'
    return response


def repeating_cursor(request: web.Request, page: int, served: Served) -> web.Response:
    return body(1 if "cursor" not in request.query else 2, next="same")


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# Random bytes as base64: still over the broker's 1 MB after lz4, which the broker checks.
INCOMPRESSIBLE = base64.b64encode(random.Random(7).randbytes(1_500_000)).decode()
GZIP_BOMB = gzip.compress(b'{"items": [' + b" " * (8 * 1024 * 1024) + b"]}")

CASES: dict[str, Case] = {
    # -- bodies that are not usable JSON: a bad page, retried, dead-lettered; the next pass goes on
    "html": Case(
        raw(b"<html><body>Maintenance</body></html>", "text/html"), **bad_page("wrong_content_type", 3)
    ),
    "json-as-text-plain": Case(raw(b'{"items": []}', "text/plain"), **bad_page("wrong_content_type", 3)),
    "bad-utf8": Case(
        raw(b'{"items": ["\xff\xfe"]}', "application/json; charset=utf-8"), **bad_page("bad_encoding", 3)
    ),
    "unknown-charset": Case(
        raw(b'{"items": []}', "application/json; charset=klingon"), **bad_page("bad_encoding", 3)
    ),
    "utf8-bom": Case(raw(b'\xef\xbb\xbf{"items": []}'), **bad_page("malformed_json", 3)),
    "truncated-json": Case(raw(b'{"items": [{"id": "2-0", "n"'), **bad_page("malformed_json", 3)),
    "deep-nesting": Case(raw(b"[" * 100_000 + b"]" * 100_000), **bad_page("malformed_json", 3)),
    "5000-digit-integer": Case(
        raw(b'{"items": [{"id": ' + b"7" * 5000 + b"}]}"), **bad_page("malformed_json", 3)
    ),
    "gzip-bomb": Case(raw(GZIP_BOMB, **{"Content-Encoding": "gzip"}), **bad_page("oversized_body", 3)),
    "huge-page": Case(raw(b'{"items": [' + b" " * (MAX_BODY + 1) + b"]}"), **bad_page("oversized_body", 3)),
    "records-not-a-list": Case(raw(b'{"items": "none today"}'), **bad_page("no_record_list", 3)),
    "total-not-a-number": Case(
        lambda request, page, served: body(page, total="lots"),
        **bad_page("bad_pagination", 3),
        spec={"pagination": {"totalPath": "$.total"}},
    ),
    # -- HTTP failures
    "500-storm": Case(status(500), **bad_page("http_5xx", 3)),
    "429-storm": Case(status(429, **{"Retry-After": "0"}), **bad_page("rate_limited", 3)),
    "404": Case(status(404), **bad_page("http_4xx", 1)),
    "304-unasked": Case(status(304), **bad_page("unexpected_304", 1)),
    "timeout": Case(slow, **bad_page("timeout", 3), spec={"request": {"timeout": "300ms"}}),
    "connection-reset": Case(reset, **bad_page("connection", 3)),
    "503-then-ok": Case(transient(2, 503), kafka=5, complete=True),
    "429-then-ok": Case(transient(1, 429, **{"Retry-After": "0"}), kafka=5, complete=True),
    # -- an empty 200 ends the chain: the page says there is nothing more
    "empty-body": Case(raw(b""), kafka=2, complete=True),
    "null-body": Case(raw(b"null"), kafka=2, complete=True),
    # -- one bad record: dead-lettered or marked, the rest of the page and the later pages flow
    "record-over-producer-limit": Case(
        with_records({"id": "big", "blob": "x" * 1_500_000}),
        kafka=5,
        dlq=("oversized_record",),
        complete=True,
    ),
    "record-over-broker-limit": Case(
        with_records({"id": "big", "blob": INCOMPRESSIBLE}),
        kafka=5,
        dlq=("oversized_record",),
        complete=True,
        producer={"message.max.bytes": 3_000_000},
        topic_config={"max.message.bytes": "1000000"},
    ),
    "record-too-deep": Case(
        with_records({"id": "deep", "v": deep(300)}), kafka=5, dlq=("unserializable_record",), complete=True
    ),
    "nan-value": Case(
        raw(b'{"items": [{"id": "2-0", "v": NaN}, {"id": "2-1", "v": Infinity}]}'), kafka=5, complete=True
    ),
    "nul-character": Case(with_records({"id": "nul", "v": "a\u0000b"}), kafka=6, complete=True),
    "missing-id-quarantined": Case(with_records({"name": "no id"}), kafka=6, complete=True),
    "null-id-quarantined": Case(with_records({"id": None}), kafka=6, complete=True),
    "missing-id-hashed": Case(
        with_records({"name": "no id"}), kafka=6, complete=True, spec={"records": {"onMissingId": "hash"}}
    ),
    "missing-id-fails-the-page": Case(
        with_records({"name": "no id"}),
        **bad_page("missing_id", 3),
        spec={"records": {"onMissingId": "fail"}},
    ),
    "future-cursor": Case(
        with_records({"id": "future", "updated_at": "9999-12-31T00:00:00Z"}),
        kafka=6,
        complete=True,
        spec={"incremental": {"param": "since", "cursorPath": "$.updated_at"}},
    ),
    # -- pagination that never ends, or loops
    "page-param-ignored": Case(same_page, kafka=2, every_page=True, error="same 2 record(s)"),
    "endless-pages": Case(
        endless, kafka=8, every_page=True, error="maxPages=4", spec={"pagination": {"maxPages": 4}}
    ),
    "link-loop": Case(
        link_loop, kafka=6, complete=True, every_page=True, spec={"pagination": {"type": "linkHeader"}}
    ),
    "cursor-repeats": Case(
        repeating_cursor,
        kafka=4,
        complete=True,
        every_page=True,
        spec={"pagination": {"type": "cursor", "cursorPath": "$.next"}},
    ),
}


def source_name(case: str) -> str:
    return f"h-{case}"


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def make_source(case: str, base: str) -> IngestionSource:
    spec = {
        "request": {"url": f"{base}/c/{case}", "timeout": "5s"},
        "records": {"path": "$.items", "idPath": "$.id"},
        "pagination": {"type": "pageNumber", "size": 2, "sizeParam": "size"},
        "rateLimit": {"requestsPerSecond": 1000, "burst": 1000},
    }
    spec = merge(spec, CASES[case].spec)
    if spec["pagination"]["type"] != "pageNumber":
        spec["pagination"] = {k: v for k, v in spec["pagination"].items() if k not in ("size", "sizeParam")}
    document = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": source_name(case)},
        "spec": spec,
    }
    return parse_source(document, f"corpus:{case}")


def hostile_app(served: dict[str, Served]) -> web.Application:
    async def route(request: web.Request) -> web.StreamResponse:
        case = request.match_info["case"]
        page = int(request.query.get("page", "1"))
        state = served[case]
        state.hits[page] += 1
        state.params.append(dict(request.query))
        spec = CASES[case]
        if not state.healed and (spec.every_page or page == 2):
            answer = spec.hostile(request, page, state)
            return await answer if asyncio.iscoroutine(answer) else answer  # type: ignore[return-value]
        return body(page)

    app = web.Application()
    app.router.add_get("/c/{case}", route)
    return app


@dataclass
class Outcome:
    first: PassStats
    second: PassStats | None
    metrics: FetcherMetrics
    served: Served
    crash: BaseException | None = None


@dataclass
class Corpus:
    outcomes: dict[str, Outcome]
    topic_name: str
    topic: dict[str, list[dict[str, Any]]]  # source → envelopes
    dlq: dict[str, list[dict[str, Any]]]  # source → dead-letter events


@pytest.fixture(scope="module")
def corpus(stack) -> Corpus:
    bootstrap = stack.kafka_bootstrap
    topic = f"it.hostile.{uuid.uuid4().hex[:8]}"
    dlq = f"{topic}.dlq"
    for name in (topic, dlq):
        ensure_topic(bootstrap, name, partitions=1)
    admin = AdminClient(client_config({"bootstrap.servers": bootstrap}, LOG))
    own = [NewTopic(f"{topic}.{c}", 1, 1, config=s.topic_config) for c, s in CASES.items() if s.topic_config]
    for future in admin.create_topics(own).values():
        future.result(timeout=30)
    shared = EnvelopeProducer(bootstrap)
    served = {case: Served() for case in CASES}

    async def run_all() -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        runner = web.AppRunner(hostile_app(served), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with aiohttp.ClientSession() as session:
                for case, spec in CASES.items():
                    metrics = FetcherMetrics()
                    producer = (
                        shared if spec.producer is None else EnvelopeProducer(bootstrap, extra=spec.producer)
                    )
                    fetcher = SourceFetcher(
                        make_source(case, f"http://{host}:{port}"),
                        producer,
                        topic if spec.topic_config is None else f"{topic}.{case}",
                        dead_letter_topic=dlq,
                        policy=RETRIES,
                        metrics=metrics,
                        max_body_bytes=MAX_BODY,
                        delivery_timeout=30.0,
                    )
                    try:
                        first = await fetcher.fetch_pass(session)
                        second = None
                        if spec.heal:
                            served[case].healed = True
                            second = await fetcher.fetch_pass(session)
                    except Exception as exc:  # the assertion is that nothing escapes
                        outcomes[case] = Outcome(PassStats(), None, metrics, served[case], exc)
                        continue
                    outcomes[case] = Outcome(first, second, metrics, served[case])
        finally:
            await runner.cleanup()
        return outcomes

    outcomes = asyncio.run(run_all())
    envelopes: dict[str, list[dict[str, Any]]] = {}
    for _, value in [m for name in [topic, *(t.topic for t in own)] for m in read_topic(bootstrap, name)]:
        envelope = json.loads(value)
        envelopes.setdefault(envelope["source"], []).append(envelope)
    events: dict[str, list[dict[str, Any]]] = {}
    for _, value in read_topic(bootstrap, dlq):
        event = json.loads(value)
        events.setdefault(event["source"], []).append(event)
    return Corpus(outcomes, topic, envelopes, events)


def test_the_corpus_has_at_least_30_cases() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_case(corpus: Corpus, case: str) -> None:
    spec = CASES[case]
    outcome = corpus.outcomes[case]
    assert outcome.crash is None, f"fetch_pass raised {outcome.crash!r}"
    first = outcome.first
    name = source_name(case)
    envelopes = corpus.topic.get(name, [])
    events = corpus.dlq.get(name, [])
    healed_records = 5 if spec.heal else 0
    assert len(envelopes) == spec.kafka + healed_records, [e["external_id"] for e in envelopes]
    assert first.produced == spec.kafka
    assert first.complete is spec.complete, first.error
    if spec.error is not None:
        assert first.error is not None and spec.error in first.error
    assert sorted(e["reason"] for e in events) == sorted(spec.dlq)
    assert first.dead_letters == len(spec.dlq)
    for event in events:
        assert event["message"]
        if event["record_key"] is None:  # a whole page: the one the server turned hostile on
            assert "page=2" in event["url"] and event["attempts"] == spec.attempts
            assert first.bad_pages == 1
    if spec.heal:
        # The source goes on: once the API behaves, the next pass ingests every page.
        assert outcome.second is not None and outcome.second.complete, outcome.second
        assert {e["external_id"] for e in envelopes} == ALL_IDS
    elif spec.complete and not spec.every_page and spec.kafka >= len(ALL_IDS):
        # One bad record does not stop its page, nor the pages after it.
        assert {e["external_id"] for e in envelopes} >= ALL_IDS


def _envelopes(corpus: Corpus, case: str) -> list[dict[str, Any]]:
    return corpus.topic[source_name(case)]


def test_an_oversized_record_names_its_size_and_the_limit(corpus: Corpus) -> None:
    (event,) = corpus.dlq[source_name("record-over-producer-limit")]
    assert "exceeds the producer's limit of 1000000 bytes" in event["message"]
    assert event["record_key"].startswith("h-record-over-producer-limit/big/")
    (broker,) = corpus.dlq[source_name("record-over-broker-limit")]
    assert "exceeds the broker's limit" in broker["message"]
    stats = corpus.outcomes["record-over-producer-limit"].first
    assert (stats.records, stats.rejected) == (6, 1)
    value = corpus.outcomes["record-over-producer-limit"].metrics.registry.get_sample_value
    labels = {"source": source_name("record-over-producer-limit"), "reason": "oversized_record"}
    assert value("restlake_fetcher_rejected_records_total", labels) == 1


def test_records_without_id_follow_on_missing_id(corpus: Corpus) -> None:
    for case in ("missing-id-quarantined", "null-id-quarantined"):
        marked = [e for e in _envelopes(corpus, case) if e["external_id"] == ""]
        assert len(marked) == 1, case
        assert marked[0]["idempotency_key"] == f"{source_name(case)}//{marked[0]['content_hash']}"
        value = corpus.outcomes[case].metrics.registry.get_sample_value
        assert (
            value("restlake_fetcher_missing_id_total", {"source": source_name(case), "action": "quarantine"})
            == 1
        )
    hashed = [e for e in _envelopes(corpus, "missing-id-hashed") if e["payload"] == {"name": "no id"}]
    assert len(hashed) == 1 and hashed[0]["external_id"] == hashed[0]["content_hash"]


def test_a_future_cursor_is_delivered_but_never_the_watermark(corpus: Corpus) -> None:
    outcome = corpus.outcomes["future-cursor"]
    assert outcome.first.watermark == SANE_TOP
    assert outcome.first.future_cursors == 1
    assert any(e["external_id"] == "future" for e in _envelopes(corpus, "future-cursor"))
    value = outcome.metrics.registry.get_sample_value
    assert value("restlake_fetcher_future_cursor_total", {"source": source_name("future-cursor")}) == 1
    watermark = value(
        "restlake_fetcher_watermark_timestamp_seconds", {"source": source_name("future-cursor")}
    )
    assert watermark == 1767398400.0  # 2026-01-03T00:00:00Z


def test_endless_and_repeating_pagination_stop_with_an_error_and_a_count(corpus: Corpus) -> None:
    for case, reason in (("endless-pages", "max_pages"), ("page-param-ignored", "repeated_page")):
        outcome = corpus.outcomes[case]
        value = outcome.metrics.registry.get_sample_value
        assert (
            value("restlake_fetcher_pagination_stops_total", {"source": source_name(case), "reason": reason})
            == 1
        )
        assert value("restlake_fetcher_passes_total", {"source": source_name(case), "outcome": "error"}) == 1
    assert corpus.outcomes["endless-pages"].served.hits == Counter({1: 1, 2: 1, 3: 1, 4: 1})
    assert corpus.outcomes["page-param-ignored"].served.hits == Counter({1: 1, 2: 1})


# One case of each kind whose records reach the shared topic; each gets its own stream query.
LANDED = ("html", "record-over-producer-limit", "missing-id-quarantined", "future-cursor")


def test_what_reached_kafka_lands_exactly_once_in_postgres_and_bronze(
    corpus: Corpus, stack: StackEndpoints, spark: SparkSession, tmp_path: Path
) -> None:
    for case in LANDED:
        name = source_name(case)
        envelopes = corpus.topic[name]
        config = StreamJobConfig(
            source=name,
            topic=corpus.topic_name,
            kafka_bootstrap=stack.kafka_bootstrap,
            bronze_path=str(tmp_path / "bronze"),
            quarantine_path=str(tmp_path / "quarantine"),
            checkpoint_path=str(tmp_path / f"checkpoint-{case}"),
            pg_dsn=stack.pg_dsn,
        )
        run_until_caught_up(spark, config)

        identified = [e for e in envelopes if e["external_id"]]
        with psycopg.connect(stack.pg_dsn) as conn:
            rows = conn.execute(
                "SELECT external_id FROM raw.api_events WHERE source = %s", (name,)
            ).fetchall()
        assert sorted(r[0] for r in rows) == sorted({e["external_id"] for e in identified}), case
        bronze = spark.read.format("delta").load(config.bronze_path).where(F.col("source") == name)
        keys = [r.idempotency_key for r in bronze.select("idempotency_key").collect()]
        assert sorted(keys) == sorted({e["idempotency_key"] for e in identified}), case
        quarantined = (
            spark.read.format("delta")
            .load(config.quarantine_path)
            .where((F.col("source") == name) & (F.col("record_source") == name))
            .select("reason")
            .collect()
        )
        # A record without id is quarantined with its reason; nothing else of the case is.
        unidentified = len(envelopes) - len(identified)
        assert [r.reason for r in quarantined] == ["missing_field:external_id"] * unidentified, case
    assert len([e for e in corpus.topic[source_name("missing-id-quarantined")] if not e["external_id"]]) == 1
