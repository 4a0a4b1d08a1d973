"""The origin rule against local HTTP servers: credentials of every kind reach only the configured
origin; redirects elsewhere are refused (or, with ``allow``, followed bare); loops and non-http
targets end as bad pages."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr
from yarl import URL

from restlake.fetcher.auth import (
    Authenticator,
    AuthError,
    CookieAuth,
    OAuth2ClientCredentials,
    QueryKeyAuth,
    StaticHeaderAuth,
)
from restlake.fetcher.client import RetryPolicy, get_page, new_session
from restlake.fetcher.origin import MAX_REDIRECTS, RedirectError, public_headers, same_origin
from restlake.fetcher.pagination.base import PageRequest

SECRET = "canary-0rigin-s3cret"
ONE_TRY = RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Server:
    """A local HTTP server that records every request it got (path, query, headers)."""

    url: URL
    seen: list[web.Request] = field(default_factory=list)

    def credentials_seen(self) -> list[str]:
        """Every place a request to this server carried the secret (or its base64 form)."""
        found = []
        encoded = base64.b64encode(f"user:{SECRET}".encode()).decode()
        for request in self.seen:
            for name, value in [*request.headers.items(), *request.query.items()]:
                if SECRET in value or encoded in value:
                    found.append(f"{request.path} {name}")
        return found


@asynccontextmanager
async def serving(routes: dict[str, Handler]) -> AsyncIterator[Server]:
    app = web.Application()
    server: Server | None = None

    def recorded(handler: Handler) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            assert server is not None
            server.seen.append(request)
            return await handler(request)

        return handle

    for path, handler in routes.items():
        app.router.add_get(path, recorded(handler))
        app.router.add_post(path, recorded(handler))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    server = Server(URL(f"http://127.0.0.1:{port}"))
    try:
        yield server
    finally:
        await runner.cleanup()


def redirect_to(target: Callable[[], str], status: int = 302) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": target()})

    return handle


async def items(request: web.Request) -> web.StreamResponse:
    return web.json_response([{"id": 1}])


def authenticators() -> dict[str, Authenticator]:
    basic = base64.b64encode(f"user:{SECRET}".encode()).decode()
    return {
        "apiKeyHeader": StaticHeaderAuth("X-API-Key", SecretStr(SECRET), (SecretStr(SECRET),)),
        "apiKeyQuery": QueryKeyAuth("api_key", SecretStr(SECRET)),
        "apiKeyCookie": CookieAuth("session", SecretStr(SECRET)),
        "bearer": StaticHeaderAuth("Authorization", SecretStr(f"Bearer {SECRET}"), (SecretStr(SECRET),)),
        "basic": StaticHeaderAuth(
            "Authorization", SecretStr(f"Basic {basic}"), (SecretStr(basic), SecretStr(SECRET))
        ),
    }


async def fetch(url: URL, auth: Authenticator, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        return await get_page(
            session,
            PageRequest(url=url),
            headers=headers or {"Accept": "application/json"},
            auth=auth,
            timeout=5,
            policy=ONE_TRY,
            **kwargs,
        )


@pytest.mark.parametrize("kind", sorted(authenticators()))
def test_cross_origin_redirect_is_refused_and_the_other_origin_sees_nothing(kind: str) -> None:
    async def scenario() -> None:
        async with (
            serving({"/items": items}) as other,
            serving({"/start": redirect_to(lambda: str(other.url / "items"))}) as home,
        ):
            with pytest.raises(RedirectError) as raised:
                await fetch(home.url / "start", authenticators()[kind])
            assert raised.value.reason == "cross_origin_redirect"
            assert raised.value.status == 302
            assert "spec.request.redirects" in str(raised.value)
            assert SECRET not in str(raised.value)
            assert len(home.seen) == 1 and home.credentials_seen() == ["/start " + _where(kind)]
            assert other.seen == []

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", sorted(authenticators()))
def test_allowed_cross_origin_redirect_is_followed_without_any_credential(kind: str) -> None:
    async def scenario() -> None:
        async with serving({"/items": items}) as other:
            # The Location echoes the query key back, as the server did.
            target = lambda: str((other.url / "items").with_query(api_key=SECRET, page="2"))  # noqa: E731
            async with serving({"/start": redirect_to(target, 307)}) as home:
                # A spec header whose name looks secret is a credential too.
                headers = {"Accept": "application/json", "X-Trace-Token": SECRET}
                response = await fetch(home.url / "start", authenticators()[kind], headers, redirects="allow")
        assert response.status == 200 and response.body == [{"id": 1}]
        assert sorted(home.credentials_seen()) == sorted(["/start X-Trace-Token", "/start " + _where(kind)])
        assert len(other.seen) == 1 and other.credentials_seen() == []
        assert dict(other.seen[0].query) == {"page": "2"}
        assert other.seen[0].headers["Accept"] == "application/json"  # harmless headers still go

    asyncio.run(scenario())


def test_same_origin_redirects_keep_the_credentials_on_every_hop() -> None:
    async def scenario() -> None:
        async with serving(
            {"/a": redirect_to(lambda: "/b", 301), "/b": redirect_to(lambda: "/items", 308), "/items": items}
        ) as home:
            response = await fetch(home.url / "a", authenticators()["apiKeyHeader"])
        assert response.body == [{"id": 1}]
        assert [r.path for r in home.seen] == ["/a", "/b", "/items"]
        assert home.credentials_seen() == ["/a X-API-Key", "/b X-API-Key", "/items X-API-Key"]

    asyncio.run(scenario())


def test_a_redirect_loop_stops_after_the_limit_as_a_bad_page() -> None:
    async def scenario() -> None:
        async with serving({"/loop": redirect_to(lambda: f"/loop?api_key={SECRET}")}) as home:
            with pytest.raises(RedirectError) as raised:
                await fetch(home.url / "loop", authenticators()["apiKeyQuery"])
        assert raised.value.reason == "too_many_redirects"
        assert len(home.seen) == MAX_REDIRECTS + 1
        assert SECRET not in str(raised.value)
        assert "(the last to /loop?api_key=***)" in str(raised.value)

    asyncio.run(scenario())


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
def test_a_redirect_to_a_non_http_scheme_is_refused_even_when_redirects_are_allowed(target: str) -> None:
    async def scenario() -> None:
        async with serving({"/start": redirect_to(lambda: target)}) as home:
            with pytest.raises(RedirectError) as raised:
                await fetch(home.url / "start", authenticators()["bearer"], redirects="allow")
        assert raised.value.reason == "bad_url"
        assert len(home.seen) == 1

    asyncio.run(scenario())


def test_a_page_on_another_origin_is_requested_without_credentials() -> None:
    # A Link header's next URL (or any URL a response names) on another origin.
    async def scenario() -> None:
        async with serving({"/items": items}) as other, serving({"/items": items}) as home:
            for auth in authenticators().values():
                await fetch(other.url / "items", auth, credential_origin=home.url / "items")
        assert len(other.seen) == len(authenticators())
        assert other.credentials_seen() == []
        assert home.seen == []

    asyncio.run(scenario())


def test_the_oauth2_token_endpoint_is_not_followed_and_its_token_stays_home() -> None:
    async def token(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": SECRET, "expires_in": 3600})

    async def scenario() -> None:
        async with serving({"/token": token, "/items": items}) as other:
            routes = {"/token": redirect_to(lambda: str(other.url / "token"), 307), "/items": items}
            async with serving(routes) as home:
                moved = OAuth2ClientCredentials(str(home.url / "token"), "client", SecretStr("cs-1234"), [])
                with pytest.raises(AuthError, match="tokenUrl"):
                    await fetch(home.url / "items", moved)
                assert other.seen == []
                good = OAuth2ClientCredentials(str(other.url / "token"), "client", SecretStr("cs-1234"), [])
                await fetch(home.url / "items", good, redirects="allow")
                await fetch(other.url / "items", good, credential_origin=home.url)
        assert [r.path for r in home.seen] == ["/token", "/items"]
        assert home.seen[1].headers["Authorization"] == f"Bearer {SECRET}"
        assert [r.path for r in other.seen] == ["/token", "/items"]
        assert "Authorization" not in other.seen[1].headers

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://api.example/v1", "https://api.example/v2?x=1", True),
        ("https://API.example/v1", "https://api.example:443/", True),
        ("http://api.example/", "http://api.example:80/x", True),
        ("https://api.example/", "http://api.example/", False),
        ("https://api.example/", "https://api.example:8443/", False),
        ("https://api.example/", "https://evil.api.example/", False),
        ("https://api.example/", "https://api.example.evil/", False),
        ("https://user@api.example/", "https://api.example/", True),
    ],
)
def test_origin_is_scheme_host_and_port(a: str, b: str, same: bool) -> None:
    assert same_origin(URL(a), URL(b)) is same


def test_only_harmless_headers_go_to_another_origin() -> None:
    headers = {
        "Accept": "application/json",
        "User-Agent": "restlake",
        "If-None-Match": '"v1"',
        "Authorization": "Bearer x",
        "Proxy-Authorization": "Basic x",
        "Cookie": "a=b",
        "X-API-Key": "k",
        "X-Auth-Token": "t",
        "Api-Secret": "s",
    }
    assert public_headers(headers) == {
        "Accept": "application/json",
        "User-Agent": "restlake",
        "If-None-Match": '"v1"',
    }


def _where(kind: str) -> str:
    return {
        "apiKeyHeader": "X-API-Key",
        "apiKeyQuery": "api_key",
        "apiKeyCookie": "Cookie",
        "bearer": "Authorization",
        "basic": "Authorization",
    }[kind]


def test_a_cookie_one_api_sets_never_reaches_another_port_of_the_same_host() -> None:
    async def sets_a_cookie(_: web.Request) -> web.StreamResponse:
        response = web.json_response([])
        response.set_cookie("session", "from-api-a")
        return response

    async def scenario() -> list[str | None]:
        async with (
            serving({"/": sets_a_cookie}) as first,
            serving({"/": lambda _: _empty()}) as second,
            new_session() as session,
        ):
            # By name, not by IP: aiohttp's jar ignores cookies of IP hosts, which would hide the leak.
            async with session.get(first.url.with_host("localhost") / "") as response:
                assert response.cookies["session"].value == "from-api-a"  # the API did set it
            async with session.get(second.url.with_host("localhost") / ""):
                pass
            return [request.headers.get("Cookie") for request in second.seen]

    assert asyncio.run(scenario()) == [None]


async def _empty() -> web.StreamResponse:
    return web.json_response([])
