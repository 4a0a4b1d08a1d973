"""The page client as a per-source object: what a request sends, renews and gives up with."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from yarl import URL

from restlake.fetcher.auth import OAuth2ClientCredentials, StaticHeaderAuth
from restlake.fetcher.breaker import BreakerRegistry, BreakerState, CircuitOpenError
from restlake.fetcher.client import (
    HttpClientError,
    HttpStatusError,
    PageClient,
    PageError,
    Response,
    RetryPolicy,
)
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.pagination.base import PageRequest
from restlake.fetcher.state import PageState

from .local_api import serving

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _run(
    handler: Handler, client: Callable[[str], PageClient], request: Callable[[str], PageRequest], **get: Any
) -> tuple[Response | PageError, list[web.Request]]:
    """One ``client.get`` against a local API answering with ``handler``; what it got and what was asked."""
    seen: list[web.Request] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        return await handler(request)

    async def scenario() -> Response | PageError:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        async with serving(app) as base, aiohttp.ClientSession() as session:
            try:
                return await client(base).get(session, request(base), **get)
            except PageError as exc:
                return exc

    return asyncio.run(scenario()), seen


def _items(status: int = 200, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if status != 200:
            return web.Response(status=status, headers=headers)
        return web.json_response([{"id": 1}], headers=headers)

    return handle


def _get(base: str) -> PageRequest:
    return PageRequest(URL(f"{base}/items"), {"page": "2"})


STORED = PageState("u", etag='"v1"', last_modified="Wed, 01 Jan 2026 00:00:00 GMT")


def test_a_get_carries_the_source_headers_and_the_validators_it_is_given() -> None:
    result, seen = _run(
        _items(304),
        lambda base: PageClient(timeout=5, policy=FAST, headers={"Accept": "application/json"}),
        _get,
        validators=STORED,
    )
    assert isinstance(result, Response) and result.status == 304 and result.body is None
    (asked,) = seen
    assert asked.query["page"] == "2"
    assert asked.headers["Accept"] == "application/json"
    assert asked.headers["If-None-Match"] == '"v1"'
    assert asked.headers["If-Modified-Since"] == STORED.last_modified


@pytest.mark.parametrize("case", ["post", "unconditional"])
def test_validators_are_not_sent_by_a_post_nor_by_an_unconditional_client(case: str) -> None:
    def request(base: str) -> PageRequest:
        if case == "post":
            return PageRequest(URL(f"{base}/search"), method="POST", body={"page": 2})
        return _get(base)

    result, seen = _run(
        _items(),
        lambda base: PageClient(timeout=5, policy=FAST, conditional=case != "unconditional"),
        request,
        validators=STORED,
    )
    assert isinstance(result, Response) and result.body == [{"id": 1}]
    (asked,) = seen
    assert asked.method == ("POST" if case == "post" else "GET")
    assert "If-None-Match" not in asked.headers and "If-Modified-Since" not in asked.headers


def test_a_401_renews_an_oauth2_token_once_and_the_retry_is_not_an_attempt() -> None:
    tokens = iter(["stale-token", "fresh-token"])

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            return web.json_response({"access_token": next(tokens), "expires_in": 3600})
        if request.headers["Authorization"] != "Bearer fresh-token":
            return web.Response(status=401)
        return web.json_response([{"id": 1}])

    result, seen = _run(
        handler,
        lambda base: PageClient(
            timeout=5,
            policy=FAST,
            auth=OAuth2ClientCredentials(f"{base}/token", "client", SecretStr("cs-1234"), []),
        ),
        _get,
    )
    assert isinstance(result, Response) and result.attempts == 1
    assert [r.path for r in seen] == ["/token", "/items", "/token", "/items"]


def test_a_401_with_static_credentials_is_given_up_at_once_with_its_typed_fields() -> None:
    result, seen = _run(
        _items(401),
        lambda base: PageClient(
            timeout=5, policy=FAST, auth=StaticHeaderAuth("X-API-Key", SecretStr("k3y-s3cret"))
        ),
        _get,
    )
    assert isinstance(result, HttpClientError)
    assert (result.reason, result.status, result.attempts, result.endpoint_failed) == (
        "http_4xx",
        401,
        1,
        False,
    )
    assert len(seen) == 1


def test_retries_run_out_on_a_5xx_and_the_endpoint_counts_as_failed() -> None:
    breakers = BreakerRegistry(failure_threshold=10)
    metrics = FetcherMetrics()
    result, seen = _run(
        _items(503),
        lambda base: PageClient(timeout=5, policy=FAST, breakers=breakers, metrics=metrics, source="s"),
        _get,
    )
    assert isinstance(result, HttpStatusError)
    assert (result.reason, result.status, result.attempts, result.endpoint_failed) == (
        "http_5xx",
        503,
        3,
        True,
    )
    assert len(seen) == FAST.max_attempts
    (breaker,) = breakers._breakers.values()
    assert breaker.failures == FAST.max_attempts
    assert metrics.retries.labels("s")._value.get() == FAST.max_attempts - 1


def test_a_429_is_retried_but_is_no_failure_of_the_endpoint() -> None:
    breakers = BreakerRegistry(failure_threshold=1)
    result, seen = _run(
        _items(429, **{"Retry-After": "0"}),
        lambda base: PageClient(timeout=5, policy=FAST, breakers=breakers),
        _get,
    )
    assert (
        isinstance(result, HttpStatusError) and result.reason == "rate_limited" and not result.endpoint_failed
    )
    assert result.attempts == len(seen) == FAST.max_attempts
    (breaker,) = breakers._breakers.values()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0


def test_an_open_circuit_stops_the_page_at_once() -> None:
    breakers = BreakerRegistry(failure_threshold=1, cooldown=60)
    result, seen = _run(
        _items(500),
        lambda base: PageClient(
            timeout=5, policy=RetryPolicy(max_attempts=5, base_delay=0.0), breakers=breakers
        ),
        _get,
    )
    # The first 500 opens the circuit; the second attempt is refused before any request goes out.
    assert isinstance(result, CircuitOpenError)
    assert (result.reason, result.attempts) == ("circuit_open", 2)
    assert len(seen) == 1
