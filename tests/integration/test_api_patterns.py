"""The API patterns of issue 17 through the real fetcher and broker, and one of them end to end.

Per pattern (DRF, HAL, Stripe, Notion-style POST, JSON Lines, CSV) the check is at the Kafka
level, which needs no Spark: a pass, a tick of the demo API, a pass, a pass over unchanged data;
exact record keys on the topic. One Spark run pair then takes the POST source to Postgres and
bronze, with exact counts, over two runs with changes in between.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from pyspark.sql import functions as F

from restlake.contracts.envelope import content_hash, idempotency_key
from restlake.contracts.spec import IngestionSource, load_source, parse_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.fetcher.client import RetryPolicy
from restlake.fetcher.poller import PassStats, SourceFetcher
from restlake.fetcher.producer import EnvelopeProducer
from restlake.kafka_admin import ensure_topic
from restlake.runtime.demo import retarget
from restlake.runtime.local import LocalRunner

from .kafka_topic import read_topic

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST_RETRIES = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05)
N, GROWTH = 123, 10  # 50 per page: 3 pages before the tick and after it (133 records)
DATASET = DatasetConfig(seed=17, initial_records=N, growth_per_tick=GROWTH, update_fraction=0.1)


def _renamed(source: IngestionSource, name: str) -> IngestionSource:
    return source.model_copy(update={"metadata": source.metadata.model_copy(update={"name": name})})


def _csv_row(record: dict[str, Any]) -> dict[str, str]:
    """A record as the demo API's CSV listing serves it."""
    return {
        "id": str(record["id"]),
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "name": record["name"],
        "status": record["status"],
        "amount": str(record["amount"]),
        "tags": ";".join(record["tags"]),
        "owner_login": record["owner"]["login"],
    }


def _served_keys(api: DemoApiHandle, source: str, tick: int, *, csv: bool) -> set[str]:
    keys = set()
    for record in api.dataset(tick).snapshot():
        payload = _csv_row(record) if csv else record
        keys.add(idempotency_key(source, str(record["id"]), content_hash(payload)))
    return keys


@pytest.mark.parametrize(
    "example", ["demo-drf", "demo-hal", "demo-stripe", "demo-notion", "demo-jsonl", "demo-csv"]
)
def test_pattern_publishes_each_version_once_over_three_passes(stack, example: str) -> None:
    with running_demo_api(DemoApiConfig(dataset=DATASET)) as api:
        source = _renamed(retarget(load_source(EXAMPLES / f"{example}.yaml"), api.base_url), f"it-{example}")
        topic = f"it.patterns.{example}.{uuid.uuid4().hex[:8]}"
        ensure_topic(stack.kafka_bootstrap, topic, partitions=3)
        fetcher = SourceFetcher(source, EnvelopeProducer(stack.kafka_bootstrap), topic, policy=FAST_RETRIES)

        async def one_pass() -> PassStats:
            async with aiohttp.ClientSession() as session:
                return await fetcher.fetch_pass(session)

        first = asyncio.run(one_pass())
        api.tick(1)
        second = asyncio.run(one_pass())
        unchanged = asyncio.run(one_pass())
        csv = example == "demo-csv"
        before = _served_keys(api, source.name, 0, csv=csv)
        after = _served_keys(api, source.name, 1, csv=csv)
    assert first.complete and second.complete and unchanged.complete
    assert (first.records, first.produced, first.pages, first.not_modified) == (N, N, 3, 0)
    # The tick appends to the last page and revises records on every page: all three change.
    assert (second.records, second.pages, second.not_modified) == (N + GROWTH, 3, 0)
    if example == "demo-notion":
        # A POST is never conditional: with nothing changed, every page is still read whole.
        assert (unchanged.pages, unchanged.not_modified, unchanged.records) == (3, 0, N + GROWTH)
    else:
        # GET pages are asked with their validators and answer 304: nothing read, nothing produced.
        assert (unchanged.pages, unchanged.not_modified, unchanged.records) == (0, 3, 0)
    keys = [key for key, _ in read_topic(stack.kafka_bootstrap, topic)]
    changed = after - before
    assert len(before) == N and len(after) == N + GROWTH and len(changed) > GROWTH
    assert set(keys) == before | after  # every version served, and nothing else
    assert len(keys) == first.produced + second.produced + unchanged.produced


# -- a POST source against a server that does send validators, and a next URL to another origin --


@contextmanager
def _recording_server(handler: Any) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A local aiohttp app on a free port in its own thread; yields its base URL and the requests seen."""
    import threading

    seen: list[dict[str, str]] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    box: dict[str, Any] = {}

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append({"method": request.method, "path": request.path_qs, **dict(request.headers)})
        return await handler(request)

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"], box["port"] = runner, runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert ready.wait(10)
    try:
        yield f"http://127.0.0.1:{box['port']}", seen
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _source(name: str, request: dict[str, Any], pagination: dict[str, Any]) -> IngestionSource:
    return parse_source(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": name},
            "spec": {
                "request": request,
                "records": {"path": "$.results", "idPath": "$.id"},
                "pagination": pagination,
            },
        },
        name,
    )


def _passes(source: IngestionSource, bootstrap: str, topic: str, n: int) -> list[PassStats]:
    ensure_topic(bootstrap, topic, partitions=1)
    fetcher = SourceFetcher(source, EnvelopeProducer(bootstrap), topic, policy=FAST_RETRIES)

    async def run() -> list[PassStats]:
        async with aiohttp.ClientSession() as session:
            return [await fetcher.fetch_pass(session) for _ in range(n)]

    return asyncio.run(run())


def test_post_pages_carry_their_body_and_never_validators(stack) -> None:
    async def query(request: web.Request) -> web.Response:
        body = await request.json()
        start = int(body.get("start_cursor") or 0)
        results = [{"id": i} for i in range(start + 1, min(start + 2, 5) + 1)]
        more = results[-1]["id"] < 5
        headers = {"ETag": f'"q{start}"', "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        return web.json_response(
            {"results": results, "next_cursor": str(results[-1]["id"]), "has_more": more}, headers=headers
        )

    with _recording_server(query) as (base, seen):
        source = _source(
            "it-post-query",
            {"url": f"{base}/v1/query", "method": "POST", "body": {"page_size": 2, "filter": {"x": 1}}},
            {
                "type": "cursor",
                "cursorPath": "$.next_cursor",
                "hasMorePath": "$.has_more",
                "param": "start_cursor",
                "in": "body",
            },
        )
        topic = f"it.patterns.post.{uuid.uuid4().hex[:8]}"
        stats = _passes(source, stack.kafka_bootstrap, topic, 2)
    assert [(s.complete, s.pages, s.not_modified, s.records) for s in stats] == [(True, 3, 0, 5)] * 2
    assert [r["method"] for r in seen] == ["POST"] * 6
    assert not [r for r in seen if "If-None-Match" in r or "If-Modified-Since" in r]
    keys = [key for key, _ in read_topic(stack.kafka_bootstrap, topic)]
    assert sorted({k.split("/")[1] for k in keys}, key=int) == ["1", "2", "3", "4", "5"]


def test_next_url_to_another_origin_is_dead_lettered_and_gets_no_credentials(stack, monkeypatch) -> None:
    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response({"results": [{"id": 99}], "next": None})

    with _recording_server(elsewhere) as (other, other_seen):

        async def listing(request: web.Request) -> web.Response:
            if request.query.get("page") == "2":
                return web.json_response({"results": [{"id": 2}], "next": f"{other}/v1/items?page=3"})
            return web.json_response({"results": [{"id": 1}], "next": "/v1/items?page=2"})

        with _recording_server(listing) as (base, seen):
            monkeypatch.setenv("RESTLAKE_SECRET_IT_TOKEN_TOKEN", "tok-not-for-strangers")
            source = _source(
                "it-cross-origin",
                {
                    "url": f"{base}/v1/items",
                    "auth": {"type": "bearer", "secretRef": {"name": "it-token", "key": "token"}},
                },
                {"type": "nextUrl", "nextUrlPath": "$.next"},
            )
            topic = f"it.patterns.origin.{uuid.uuid4().hex[:8]}"
            (stats,) = _passes(source, stack.kafka_bootstrap, topic, 1)
    assert [r["path"] for r in seen] == ["/v1/items", "/v1/items?page=2"]  # the relative link followed
    assert all(r.get("Authorization") == "Bearer tok-not-for-strangers" for r in seen)
    assert other_seen == []  # never asked, so never handed the token
    assert (stats.complete, stats.records, stats.produced, stats.bad_pages, stats.dead_letters) == (
        False,
        2,
        2,
        1,
        1,
    )
    assert stats.error is not None and "not on the origin of the page it came from" in stats.error
    dead = read_topic(stack.kafka_bootstrap, f"{topic}.dlq")
    assert len(dead) == 1 and b'"reason":"cross_origin_link"' in dead[0][1].replace(b" ", b"")


# -- end to end: Postgres and bronze ---------------------------------------------------------------


def _postgres(dsn: str, source: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, payload->>'updated_at' FROM raw.api_events WHERE source = %s", (source,)
        ).fetchall()
    return dict(rows)


def test_post_source_lands_exactly_over_two_runs(stack, spark, spark_jars) -> None:
    # One Spark pair only (the stream job is per source): the POST source, whose fetch state in
    # Postgres is keyed by URL and body. The other patterns differ only before Kafka, checked above.
    example = "demo-notion"
    with running_demo_api(DemoApiConfig(dataset=DATASET)) as api:
        source = _renamed(retarget(load_source(EXAMPLES / f"{example}.yaml"), api.base_url), f"e2e-{example}")
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        first = runner.run_until_caught_up()
        api.tick(1)
        second = runner.run_until_caught_up()
        before = _served_keys(api, source.name, 0, csv=False)
        after = _served_keys(api, source.name, 1, csv=False)
        current = {str(r["id"]): r["updated_at"] for r in api.dataset(1).snapshot()}
    assert (first.fetch.records, first.postgres_rows, first.bronze_rows, first.quarantined) == (N, N, N, 0)
    assert second.fetch.complete and second.quarantined == 0
    assert second.postgres_rows == N + GROWTH
    assert second.bronze_rows == len(before | after)  # each version once, however often it was fetched
    assert _postgres(stack.pg_dsn, source.name) == current
    bronze = (
        spark.read.format("delta")
        .load(source.bronze_path(stack.lake_root))
        .where(F.col("source") == source.name)
    )
    assert {r.idempotency_key for r in bronze.select("idempotency_key").collect()} == before | after
