"""The secret canary: one secret value in every form restlake accepts, every failure path driven, and
then every place restlake writes to searched for it. It must be found only where it belongs: in
the requests to the origin it was configured for.

One fetcher process (``FetcherService``) runs eight sources against two local servers, ``home`` (the
configured origin) and ``other`` (a second origin), and the session's real Kafka:

======== ================================== ===========================================================
source   credential                          path driven
======== ================================== ===========================================================
good     API key in the query                 3 pages: a next link echoing the key, then one on ``other``
header   API key header ``X-API-Key``         302 to ``other``: refused, dead-lettered
loop     API key in the query                 a redirect loop echoing the key: refused after 10 hops
basic    basic auth                           HTTP 500 echoing the Authorization header until given up
bearer   bearer, ``redirects: allow``         307 to a metadata-style endpoint on ``other``: followed
                                              bare; its credentials body is dead-lettered, redacted
cookie   API key cookie                       200 text/html echoing the cookie: dead-lettered, redacted
oauth    OAuth2 client credentials            token granted, one page of records
oauthbad OAuth2 client credentials            the token endpoint refuses, echoing the client secret
======== ================================== ===========================================================

Searched: captured log records, the JSON log lines on stderr, every data and dead-letter topic,
the lineage events (the fetcher's, and the stream job's built from a key=value Postgres DSN with the
secret as password), the fetcher's ``/metrics`` and an operator condition quoting the secret.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from restlake.contracts.secrets import secret_env_var
from restlake.contracts.spec import IngestionSource
from restlake.fetcher.logformat import JsonFormatter
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.service import FetcherService
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import MemoryStateStore
from restlake.kube.conditions import FETCHER_READY, deployment_condition
from restlake.lineage import BatchCounts, LineageEmitter, StreamTargets, emit_stream_batch

from ..openlineage_events import Recorder
from .kafka_topic import read_topic

pytestmark = pytest.mark.integration

SECRET = f"Canary-{uuid.uuid4().hex[:16]}"
BASIC = base64.b64encode(f"user:{SECRET}".encode()).decode()
CLIENT_BASIC = base64.b64encode(f"restlake:{SECRET}".encode()).decode()
ACCESS_TOKEN = f"at-{SECRET}"
# What a cloud metadata endpoint hands out: not configured anywhere, recognised by its shape.
META_KEY_ID = "ASIA" + uuid.uuid4().hex[:16].upper()
META_SECRET = f"Meta-{uuid.uuid4().hex}"
FORMS = {
    "secret": SECRET,
    "basic": BASIC,
    "client basic": CLIENT_BASIC,
    "metadata secret": META_SECRET,
    "metadata key id": META_KEY_ID,
}
ATTEMPTS = 3
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    url: URL = field(default_factory=URL)
    seen: list[web.Request] = field(default_factory=list)

    def carrying(self, value: str) -> list[str]:
        """``path name`` of every request part (header or query parameter) that carried ``value``."""
        return [
            f"{r.path} {name}"
            for r in self.seen
            for name, sent in [*r.headers.items(), *r.query.items()]
            if value in sent
        ]


@asynccontextmanager
async def serving(routes: dict[str, Handler]) -> AsyncIterator[Server]:
    server = Server()

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        server.seen.append(request)
        return await handler(request)

    app = web.Application(middlewares=[record])
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.url = URL(f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


def home_routes(other: Server) -> dict[str, Handler]:
    async def items(request: web.Request) -> web.StreamResponse:
        if request.query.get("api_key") != SECRET:
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.query.get("page", "1") == "1":
            # APIs often echo the key into their next links.
            link = f'</items?page=2&api_key={SECRET}>; rel="next"'
            return web.json_response([{"id": 1}, {"id": 2}], headers={"Link": link})
        link = f'<{other.url}/items?page=3>; rel="next"'
        return web.json_response([{"id": 3}], headers={"Link": link})

    async def moved(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(str(other.url / "moved-here"))

    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/loop?api_key={SECRET}&n={len(request.query)}")

    async def broken(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "")
        return web.Response(status=500, text=f"upstream failed for {sent} ({SECRET})")

    async def to_metadata(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect(str(other.url / "latest/meta-data/iam/security-credentials/app"))

    async def echo_html(request: web.Request) -> web.StreamResponse:
        cookie = request.headers.get("Cookie", "")
        return web.Response(text=f"<html>cookie was {cookie}; key {SECRET}</html>", content_type="text/html")

    async def token(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Basic {CLIENT_BASIC}":
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({"access_token": ACCESS_TOKEN, "expires_in": 3600})

    async def token_refused(request: web.Request) -> web.StreamResponse:
        sent = request.headers.get("Authorization", "")
        return web.json_response({"error": "invalid_client", "error_description": f"bad {sent}"}, status=401)

    async def oauth_items(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response([{"id": 10}, {"id": 11}])

    return {
        "/items": items,
        "/moved": moved,
        "/loop": loop,
        "/broken": broken,
        "/to-metadata": to_metadata,
        "/echo-html": echo_html,
        "/token": token,
        "/token-refused": token_refused,
        "/oauth-items": oauth_items,
    }


async def other_items(request: web.Request) -> web.StreamResponse:
    return web.json_response([{"id": 4}])


async def metadata(request: web.Request) -> web.StreamResponse:
    body = {
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": META_KEY_ID,
        "SecretAccessKey": META_SECRET,
        "Token": f"IQo{META_SECRET}",
        "Expiration": "2030-01-01T00:00:00Z",
    }
    return web.Response(text=json.dumps(body, indent=2), content_type="text/plain")


async def moved_here(request: web.Request) -> web.StreamResponse:
    return web.json_response([{"id": 99}])


def source(name: str, url: str, auth: dict[str, Any], **request: Any) -> IngestionSource:
    spec: dict[str, Any] = {
        "request": {"url": url, "auth": auth, **request},
        "poll": {"interval": "1h", "jitter": 0},
        "rateLimit": {"requestsPerSecond": 1000, "burst": 100},
    }
    if name == "good":
        spec["pagination"] = {"type": "linkHeader"}
    return IngestionSource.model_validate(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def sources(home: URL) -> list[IngestionSource]:
    ref = {"name": "canary", "key": "value"}
    key_query = {"type": "apiKey", "in": "query", "name": "api_key", "secretRef": ref}

    def oauth(path: str) -> dict[str, Any]:
        return {
            "type": "oauth2ClientCredentials",
            "tokenUrl": str(home / path.lstrip("/")),
            "clientId": "restlake",
            "clientSecretRef": ref,
        }

    return [
        source("good", f"{home}/items", key_query),
        source(
            "header",
            f"{home}/moved",
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "secretRef": ref},
        ),
        source("loop", f"{home}/loop", key_query),
        source("basic", f"{home}/broken", {"type": "basic", "username": "user", "passwordSecretRef": ref}),
        source("bearer", f"{home}/to-metadata", {"type": "bearer", "secretRef": ref}, redirects="allow"),
        source(
            "cookie",
            f"{home}/echo-html",
            {"type": "apiKey", "in": "cookie", "name": "session", "secretRef": ref},
        ),
        source("oauth", f"{home}/oauth-items", oauth("/token")),
        source("oauthbad", f"{home}/oauth-items", oauth("/token-refused")),
    ]


@dataclass
class Run:
    results: dict[str, Any]
    metrics: str
    home: Server
    other: Server


async def run_fetcher(service: FetcherService, home: Server, other: Server) -> Run:
    task = asyncio.create_task(service.run())
    # Each source makes one pass (the interval is an hour); /metrics is read while the fetcher runs.
    async with asyncio.timeout(90):
        while not all(service.results.values()) or service.ops is None or service.ops.base_url is None:
            await asyncio.sleep(0.05)
    assert service.ops is not None and service.ops.base_url is not None
    async with aiohttp.ClientSession() as session, session.get(f"{service.ops.base_url}/metrics") as resp:
        metrics = await resp.text()
    service.request_stop()
    results = await task
    return Run(results, metrics, home, other)


def test_the_secret_reaches_only_its_origin_and_nothing_restlake_writes(
    stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(secret_env_var("canary", "value"), SECRET)
    prefix = f"it.canary.{uuid.uuid4().hex[:8]}."
    lineage = Recorder()
    caplog.set_level(logging.DEBUG, logger="restlake")
    json_logs = logging.StreamHandler(sys.stderr)
    json_logs.setFormatter(JsonFormatter())
    logging.getLogger().addHandler(json_logs)

    async def scenario() -> Run:
        async with (
            serving(
                {
                    "/items": other_items,
                    "/moved-here": moved_here,
                    "/latest/meta-data/iam/security-credentials/app": metadata,
                }
            ) as other,
            serving(home_routes(other)) as home,
        ):
            service = FetcherService(
                sources(home.url),
                producer=EnvelopeProducer(stack.kafka_bootstrap),
                state_store=MemoryStateStore(),
                settings=FetcherSettings(
                    ops_port=0,
                    max_attempts=ATTEMPTS,
                    retry_base_delay=0.01,
                    retry_max_delay=0.05,
                    breaker_failures=1000,
                    delivery_timeout=30,
                ),
                topic_prefix=prefix,
                kafka_bootstrap=stack.kafka_bootstrap,
                create_topics=True,
                topic_partitions=1,
                lineage=LineageEmitter(lineage),
            )
            return await run_fetcher(service, home, other)

    try:
        run = asyncio.run(scenario())
    finally:
        logging.getLogger().removeHandler(json_logs)
    stats = {name: passes[0] for name, passes in run.results.items()}

    # -- the secret went where it belongs, so finding it nowhere else means something ---------------
    home, other = run.home, run.other
    # Every attempt of a bad page is a request; every hop of the loop is one too (10 redirects + 1).
    assert sorted(home.carrying(SECRET)) == sorted(
        ["/items api_key"] * 2
        + ["/moved X-API-Key"] * ATTEMPTS
        + ["/loop api_key"] * (ATTEMPTS * 11)
        + ["/to-metadata Authorization"] * ATTEMPTS
        + ["/echo-html Cookie"] * ATTEMPTS
        + ["/oauth-items Authorization"]
    )
    assert sorted(home.carrying(BASIC)) == ["/broken Authorization"] * ATTEMPTS
    assert sorted(home.carrying(CLIENT_BASIC)) == ["/token Authorization", "/token-refused Authorization"]
    assert [r.path for r in other.seen if r.path != "/latest/meta-data/iam/security-credentials/app"] == [
        "/items"
    ]
    assert [r.path for r in other.seen].count("/latest/meta-data/iam/security-credentials/app") == ATTEMPTS
    assert other.carrying(SECRET) == [] and other.carrying(BASIC) == []
    assert all("Authorization" not in r.headers and "Cookie" not in r.headers for r in other.seen)

    # -- what each source did ---------------------------------------------------------------------
    done = {
        name: (s.complete, s.records, s.produced, s.bad_pages, s.dead_letters) for name, s in stats.items()
    }
    assert done == {
        "good": (True, 4, 4, 0, 0),
        "header": (False, 0, 0, 1, 1),
        "loop": (False, 0, 0, 1, 1),
        "basic": (False, 0, 0, 1, 1),
        "bearer": (False, 0, 0, 1, 1),
        "cookie": (False, 0, 0, 1, 1),
        "oauth": (True, 2, 2, 0, 0),
        "oauthbad": (False, 0, 0, 1, 1),
    }
    dead = {}
    for name in stats:
        events = [json.loads(value) for _, value in read_topic(stack.kafka_bootstrap, f"{prefix}{name}.dlq")]
        dead[name] = events
    reasons = {name: [(e["reason"], e["attempts"]) for e in events] for name, events in dead.items()}
    assert reasons == {
        "good": [],
        "header": [("cross_origin_redirect", ATTEMPTS)],
        "loop": [("too_many_redirects", ATTEMPTS)],
        "basic": [("http_5xx", ATTEMPTS)],
        "bearer": [("wrong_content_type", ATTEMPTS)],
        "cookie": [("wrong_content_type", ATTEMPTS)],
        "oauth": [],
        "oauthbad": [("auth", 1)],
    }
    assert dead["cookie"][0]["body_excerpt"] == "<html>cookie was session=***; key ***</html>"
    excerpt = json.loads(dead["bearer"][0]["body_excerpt"])
    assert excerpt["SecretAccessKey"] == excerpt["Token"] == excerpt["AccessKeyId"] == "***"
    assert excerpt["Expiration"] == "2030-01-01T00:00:00Z"
    data = {name: read_topic(stack.kafka_bootstrap, f"{prefix}{name}") for name in stats}
    assert {name: len(records) for name, records in data.items()} == {
        "good": 4,
        "header": 0,
        "loop": 0,
        "basic": 0,
        "bearer": 0,
        "cookie": 0,
        "oauth": 2,
        "oauthbad": 0,
    }
    urls = sorted(json.loads(value)["request"]["url"] for _, value in data["good"])
    # The key auth adds, and the one the next link echoed, are not part of any page's identity.
    # Both sides sorted: the two servers' ports are random, so either may sort first.
    assert urls == sorted(
        [
            f"{home.url}/items",
            f"{home.url}/items",
            f"{home.url}/items?page=2",
            f"{other.url}/items?page=3",
        ]
    )

    # -- the stream job's lineage, with the DSN as operators often write it ----------------------
    pg = urlsplit(stack.pg_dsn)
    targets = StreamTargets(
        source="good",
        kafka_bootstrap=stack.kafka_bootstrap,
        topic=f"{prefix}good",
        bronze_uri=f"{stack.lake_root}/bronze/good",
        quarantine_uri=f"{stack.lake_root}/quarantine/good",
        pg_dsn=f"host={pg.hostname} port={pg.port} user=restlake password={SECRET} dbname=lake",
    )
    emitter = LineageEmitter(lineage)
    emit_stream_batch(emitter, targets, BatchCounts(4, 0, 4))
    emit_stream_batch(emitter, targets, None, error=f"connection to {targets.pg_dsn} refused")
    postgres = {
        o["namespace"] + " " + o["name"]
        for e in lineage.events
        for o in e["outputs"]
        if o["namespace"].startswith("postgres")
    }
    assert postgres == {f"postgres://{pg.hostname}:{pg.port} lake.raw.api_events"}
    fail_messages = [
        e["run"]["facets"]["errorMessage"]["message"] for e in lineage.events if e["eventType"] == "FAIL"
    ]
    assert len(fail_messages) == 7  # six sources' failed passes and one stream batch

    # -- an operator condition quoting what a Deployment said -----------------------------------
    deployment = {
        "metadata": {"name": "restlake-fetcher-good", "generation": 2},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 2,
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": f"container failed: RESTLAKE_PG_DSN=host=db password={SECRET}",
                }
            ],
        },
    }
    status = deployment_condition(FETCHER_READY, deployment, paused=False).as_dict(2, "2026-01-01T00:00:00Z")
    assert "password=***" in status["message"]

    # -- and nowhere else -------------------------------------------------------------------------
    stderr = capfd.readouterr().err
    assert '"message": "fetch pass complete' in stderr  # the JSON log lines were captured
    places = {
        "log records": caplog.text,
        "stderr": stderr,
        "dead letters": json.dumps(dead),
        "data topics": repr(data),
        "lineage": json.dumps(lineage.events),
        "metrics": run.metrics,
        "condition": json.dumps(status),
        "pass stats": repr(stats),
    }
    assert "restlake_fetcher_bad_pages_total" in run.metrics
    leaks = [
        f"{form} in {place}"
        for place, text in places.items()
        for form, value in FORMS.items()
        if value in text
    ]
    assert leaks == []
