"""The aiohttp application: paginated listings over one Dataset, plus admin, health and OAuth.

Request path of a listing (``/v1/*``): rate limit -> auth -> fault plan -> handler (params,
page, validators, 304) -> body fault. ``/_admin/*``, ``/healthz`` and ``/oauth/token`` bypass
limits and faults: tests must be able to steer the server whatever state it is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from restlake.demoapi.auth import Authenticator, OAuthError
from restlake.demoapi.conditional import is_not_modified, strong_etag
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import Dataset
from restlake.demoapi.faults import FaultConfig, FaultInjector, break_body
from restlake.demoapi.orgs import OrgData
from restlake.demoapi.orgs import dumps as org_dumps
from restlake.demoapi.pagination import (
    BadRequest,
    after_cursor,
    count,
    decode_cursor,
    encode_cursor,
    last_page,
    link_header,
    parse_int,
    parse_range,
    parse_since,
    start_cursor,
    window,
)
from restlake.demoapi.ratelimit import RateLimiter
from restlake.demoapi.shapes import (
    ShapedPage,
    csv_page,
    drf_page,
    hal_page,
    jsonl_page,
    notion_query,
    stripe_page,
)
from restlake.demoapi.timestamps import http_date, iso_z

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_TICKS_PER_REQUEST = 10_000
# Listing requests remembered for /_admin/requests (method and path with query), oldest dropped first.
REQUEST_LOG_SIZE = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_dumps(value), status=status, content_type=JSON, headers=headers)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"error": code, "message": message, "status": status}, status=status, headers=headers)


class ServerState:
    """Everything mutable of one server; touched only from its event loop, so no locks."""

    def __init__(self, config: DemoApiConfig) -> None:
        self.config = config
        self.dataset = Dataset(config.dataset)
        self.orgs = OrgData(config.orgs)
        self.faults = FaultInjector(config.faults)
        self.limiter = RateLimiter(config.rate_limit)
        self.auth = Authenticator(config.auth)
        self.statuses: Counter[int] = Counter()
        self.listing_requests = 0
        self.not_modified = 0
        self.records_served = 0
        self.ticks_auto = 0
        # What was asked, in order, so a test can see where a restarted client resumed.
        self.request_log: deque[str] = deque(maxlen=REQUEST_LOG_SIZE)

    def snapshot(self) -> dict[str, Any]:
        ds = self.dataset
        return {
            "tick": ds.tick,
            "virtual_time": iso_z(ds.now_ms),
            "total_records": ds.total,
            "created_last_tick": ds.created_last_tick,
            "updated_last_tick": ds.updated_last_tick,
            "updated_total": ds.updated_total,
            "realtime": self.config.realtime,
            "ticks_auto": self.ticks_auto,
            "dataset": self.config.dataset.model_dump(mode="json"),
            "listing_requests": self.listing_requests,
            "records_served": self.records_served,
            "not_modified": self.not_modified,
            "rate_limited": self.statuses[429],
            "unauthorized": self.statuses[401],
            "bad_requests": self.statuses[400],
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "oauth_tokens_issued": self.auth.tokens_issued,
            "faults": self.faults.state(),
        }


STATE = web.AppKey("state", ServerState)


def _client_key(request: web.Request) -> str:
    """Who a rate-limit bucket belongs to: the credential if one is sent, else the peer address."""
    auth = request.app[STATE].config.auth
    if auth.api_key_name and (key := request.headers.get(auth.api_key_name)):
        return f"key:{key}"
    return request.headers.get("Authorization") or f"ip:{request.remote}"


@web.middleware
async def _listing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if not request.path.startswith("/v1/"):
        return await handler(request)
    state.listing_requests += 1
    state.request_log.append(f"{request.method} {request.path_qs}")
    limit_headers: dict[str, str] = {}
    decision = state.limiter.check(_client_key(request))
    if decision is not None:
        limit_headers = state.limiter.headers(decision)
        if not decision.allowed:
            state.statuses[429] += 1
            return _error(429, "rate_limited", "API rate limit exceeded", headers=limit_headers)
    if not state.auth.check(request.headers, request.query):
        state.statuses[401] += 1
        headers = {**limit_headers, "WWW-Authenticate": 'Bearer realm="restlake-demo"'}
        return _error(401, "unauthorized", "missing or invalid credentials", headers=headers)
    plan = state.faults.plan()
    if plan.slow_seconds:
        await asyncio.sleep(plan.slow_seconds)
    if plan.error_status is not None:
        state.statuses[plan.error_status] += 1
        headers = dict(limit_headers)
        if plan.error_status in (429, 503):
            headers["Retry-After"] = "1"
        return _error(
            plan.error_status, "injected_fault", f"injected fault #{plan.sequence}", headers=headers
        )
    try:
        response = await handler(request)
    except BadRequest as exc:
        state.statuses[400] += 1
        return _error(400, "bad_request", str(exc), headers=limit_headers)
    if plan.body_fault is not None and response.status == 200 and isinstance(response, web.Response):
        body, content_type = break_body(
            plan.body_fault,
            bytes(response.body),  # type: ignore[arg-type]
            response.content_type,
        )
        state.faults.injected[plan.body_fault] += 1
        headers = {k: v for k, v in response.headers.items() if k not in ("Content-Type", "Content-Length")}
        response = web.Response(body=body, status=200, headers=headers)
        response.headers["Content-Type"] = (
            f"{content_type}; charset=utf-8" if content_type != JSON else "application/json; charset=utf-8"
        )
    response.headers.update(limit_headers)
    state.statuses[response.status] += 1
    return response


def _page_response(
    request: web.Request,
    body: bytes,
    ids: list[int],
    headers: dict[str, str],
    extra_tag: bytes = b"",
    content_type: str = JSON,
) -> web.Response:
    """200 with validators, or 304 when the client's validators still match."""
    state = request.app[STATE]
    ds = state.dataset
    # An empty page is "as of now": anything that later fills it is newer than the clock now.
    last_ms = max(map(ds.updated_at_ms, ids)) if ids else ds.now_ms
    headers["ETag"] = strong_etag(request.path.encode(), extra_tag, body)
    headers["Last-Modified"] = http_date(last_ms)
    headers["Cache-Control"] = "no-cache"
    if is_not_modified(request.headers, headers["ETag"], last_ms):
        state.not_modified += 1
        return web.Response(status=304, headers=headers)
    state.records_served += len(ids)
    return web.Response(body=body, content_type=content_type, headers=headers)


def _page_size(request: web.Request, name: str, default: int) -> int:
    return parse_int(request.query, name, default, 1, request.app[STATE].config.max_page_size)


async def link_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    per_page = _page_size(request, "per_page", 30)
    page = parse_int(request.query, "page", 1, 1)
    since, until = parse_range(request.query)
    last = last_page(count(ds, since, until), per_page)
    ids = window(ds, since, (page - 1) * per_page, per_page, until)
    headers = {"Link": link_header(request.url, page, per_page, last)}
    # Whether a next page exists is part of the representation even when the rows are not.
    body = ds.records_json(ids).encode()
    return _page_response(request, body, ids, headers, extra_tag=b"n" if page < last else b"-")


async def cursor_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    limit = _page_size(request, "limit", 100)
    since = parse_since(request.query)
    raw = request.query.get("cursor")
    # A cursor carries its own since, so following next_cursor needs no other parameter.
    cursor = decode_cursor(raw) if raw else start_cursor(ds, since)
    ids, following = after_cursor(ds, cursor, limit)
    # Bodies are assembled as text around records_json: the per-record dict + dumps path is slower.
    next_cursor = json.dumps(encode_cursor(following) if following else None)
    body = f'{{"data":{ds.records_json(ids)},"next_cursor":{next_cursor}}}'.encode()
    return _page_response(request, body, ids, {})


async def pages_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    per_page = _page_size(request, "per_page", 100)
    page = parse_int(request.query, "page", 1, 1)
    since, until = parse_range(request.query)
    total = count(ds, since, until)
    ids = window(ds, since, (page - 1) * per_page, per_page, until)
    body = f'{{"items":{ds.records_json(ids)},"page":{page},"per_page":{per_page},"total":{total}}}'
    return _page_response(request, body.encode(), ids, {})


async def offset_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    limit = _page_size(request, "limit", 100)
    offset = parse_int(request.query, "offset", 0, 0)
    since, until = parse_range(request.query)
    total = count(ds, since, until)
    ids = window(ds, since, offset, limit, until)
    body = f'{{"results":{ds.records_json(ids)},"total":{total}}}'
    return _page_response(request, body.encode(), ids, {})


# -- listings shaped like well-known APIs ---------------------------------------------------------


def _shaped(request: web.Request, page: ShapedPage) -> web.Response:
    return _page_response(request, page.body, page.ids, dict(page.headers), content_type=page.content_type)


async def drf_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    size = _page_size(request, "page_size", 100)
    page = parse_int(request.query, "page", 1, 1)
    return _shaped(request, drf_page(ds, request.url, page, size, parse_since(request.query)))


async def hal_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    size = _page_size(request, "size", 20)
    page = parse_int(request.query, "page", 1, 1)
    return _shaped(request, hal_page(ds, request.url, page, size, parse_since(request.query)))


async def stripe_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    limit = _page_size(request, "limit", 10)
    return _shaped(request, stripe_page(ds, limit, request.query.get("starting_after")))


async def notion_query_items(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        query = await request.json() if request.can_read_body else {}
    except ValueError as exc:
        raise BadRequest(f"the body must be a JSON object: {exc}") from exc
    if not isinstance(query, dict):
        raise BadRequest("the body must be a JSON object")
    page = notion_query(state.dataset, query, state.config.max_page_size)
    # A query answered by POST carries no validators: every call is answered afresh.
    state.records_served += len(page.ids)
    return web.Response(body=page.body, content_type=JSON)


async def jsonl_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    per_page = _page_size(request, "per_page", 100)
    page = parse_int(request.query, "page", 1, 1)
    return _shaped(request, jsonl_page(ds, page, per_page, parse_since(request.query)))


async def csv_items(request: web.Request) -> web.Response:
    ds = request.app[STATE].dataset
    per_page = _page_size(request, "per_page", 100)
    page = parse_int(request.query, "page", 1, 1)
    return _shaped(request, csv_page(ds, page, per_page, parse_since(request.query)))


# -- parent -> child: an organisation's repositories, each repository's issues --------------------


def _org_page(
    request: web.Request, records: list[dict[str, Any]], revisions: list[int], page: int, per_page: int
) -> web.Response:
    """One Link-paginated page of ``records`` with validators (304 when the client's still match)."""
    state = request.app[STATE]
    last = max(1, -(-len(records) // per_page))
    chunk = records[(page - 1) * per_page : page * per_page]
    body = org_dumps(chunk)
    last_ms = state.orgs.last_modified_ms(revisions)
    headers = {
        "Link": link_header(request.url, page, per_page, last),
        "ETag": strong_etag(request.path.encode(), b"n" if page < last else b"-", body),
        "Last-Modified": http_date(last_ms),
        "Cache-Control": "no-cache",
    }
    if is_not_modified(request.headers, headers["ETag"], last_ms):
        state.not_modified += 1
        return web.Response(status=304, headers=headers)
    state.records_served += len(chunk)
    return web.Response(body=body, content_type=JSON, headers=headers)


async def org_repos(request: web.Request) -> web.Response:
    orgs = request.app[STATE].orgs
    if request.match_info["org"] != orgs.config.org:
        return _error(404, "not_found", f"no organisation {request.match_info['org']!r}")
    per_page = _page_size(request, "per_page", 30)
    page = parse_int(request.query, "page", 1, 1)
    repos = orgs.repo_list()
    return _org_page(request, [orgs.repo_json(r) for r in repos], [r.revision for r in repos], page, per_page)


async def repo_issues(request: web.Request) -> web.Response:
    orgs = request.app[STATE].orgs
    repo = orgs.repos.get(request.match_info["repo"])
    if request.match_info["owner"] != orgs.config.org or repo is None:
        return _error(404, "not_found", "no such repository")
    per_page = _page_size(request, "per_page", 30)
    page = parse_int(request.query, "page", 1, 1)
    issues = orgs.issue_list(repo, parse_since(request.query))
    return _org_page(
        request, [orgs.issue_json(i) for i in issues], [i.revision for i in issues], page, per_page
    )


# -- admin, health, oauth ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def admin_state(request: web.Request) -> web.Response:
    return _json(request.app[STATE].snapshot())


async def admin_requests(request: web.Request) -> web.Response:
    """The listing requests seen (``GET /v1/...?since=...``), oldest first; ``?clear=1`` empties the log."""
    state = request.app[STATE]
    seen = list(state.request_log)
    if request.query.get("clear"):
        state.request_log.clear()
    return _json({"requests": seen})


async def admin_tick(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        n = parse_int(request.query, "n", 1, 0)
    except BadRequest as exc:
        return _error(400, "bad_request", str(exc))
    if n > MAX_TICKS_PER_REQUEST:
        return _error(400, "bad_request", f"n must be <= {MAX_TICKS_PER_REQUEST}")
    state.dataset.advance(n)
    log.info("clock advanced", extra={"ticks": n, "tick": state.dataset.tick})
    return _json(state.snapshot())


async def admin_touch_org(request: web.Request) -> web.Response:
    """Revise one repository (``?repo=``) or one of its issues (``&issue=<number>``)."""
    state = request.app[STATE]
    try:
        issue = parse_int(request.query, "issue", 0, 0) or None
        changed = state.orgs.touch(request.query.get("repo", ""), issue)
    except BadRequest as exc:
        return _error(400, "bad_request", str(exc))
    except KeyError as exc:
        return _error(404, "not_found", str(exc.args[0]))
    return _json(changed)


async def admin_get_faults(request: web.Request) -> web.Response:
    return _json(request.app[STATE].faults.state())


async def admin_set_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
        config = FaultConfig.model_validate(body)
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError are both ValueErrors
        return _error(400, "bad_request", f"invalid fault config: {exc}")
    state.faults.configure(config)
    return _json(state.faults.state())


async def admin_clear_faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.faults.clear()
    return _json(state.faults.state())


async def oauth_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if not state.config.auth.oauth_enabled:
        return _error(404, "not_found", "OAuth is not enabled on this server")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        token = state.auth.issue(fields, request.headers.get("Authorization"))
    except OAuthError as exc:
        headers = {"WWW-Authenticate": 'Basic realm="restlake-demo"'} if exc.status == 401 else None
        return _json({"error": exc.code, "error_description": str(exc)}, status=exc.status, headers=headers)
    return _json(token, headers={"Cache-Control": "no-store"})


# -- clock ---------------------------------------------------------------------------------------


async def _realtime_clock(state: ServerState) -> None:
    """One tick per tick_seconds of wall time, catching up (not drifting) after a slow tick."""
    loop = asyncio.get_running_loop()
    period = state.config.dataset.tick_seconds
    started = loop.time()
    while True:
        await asyncio.sleep(max(0.0, started + (state.ticks_auto + 1) * period - loop.time()))
        state.dataset.advance(1)
        state.ticks_auto += 1
        log.debug("realtime tick", extra={"tick": state.dataset.tick})


async def _clock_context(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    task = asyncio.create_task(_realtime_clock(state)) if state.config.realtime else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_app(config: DemoApiConfig | None = None) -> web.Application:
    """A fresh application (own dataset, counters and clock) for ``config``."""
    state = ServerState(config or DemoApiConfig())
    app = web.Application(middlewares=[_listing_middleware])
    app[STATE] = state
    app.cleanup_ctx.append(_clock_context)
    app.router.add_get("/v1/link/items", link_items)
    app.router.add_get("/v1/cursor/items", cursor_items)
    app.router.add_get("/v1/pages/items", pages_items)
    app.router.add_get("/v1/offset/items", offset_items)
    app.router.add_get("/v1/drf/items", drf_items)
    app.router.add_get("/v1/hal/items", hal_items)
    app.router.add_get("/v1/stripe/items", stripe_items)
    app.router.add_post("/v1/notion/query", notion_query_items)
    app.router.add_get("/v1/jsonl/items", jsonl_items)
    app.router.add_get("/v1/csv/items", csv_items)
    app.router.add_get("/v1/orgs/{org}/repos", org_repos)
    app.router.add_get("/v1/repos/{owner}/{repo}/issues", repo_issues)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/_admin/state", admin_state)
    app.router.add_post("/_admin/tick", admin_tick)
    app.router.add_get("/_admin/requests", admin_requests)
    app.router.add_get("/_admin/faults", admin_get_faults)
    app.router.add_post("/_admin/faults", admin_set_faults)
    app.router.add_delete("/_admin/faults", admin_clear_faults)
    app.router.add_post("/_admin/orgs/touch", admin_touch_org)
    app.router.add_post("/oauth/token", oauth_token)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start serving ``app``; returns the runner (for cleanup) and the base URL with the bound port."""
    runner = web.AppRunner(app, access_log=log if app[STATE].config.access_log else None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"


async def serve(config: DemoApiConfig, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve until cancelled or SIGINT/SIGTERM; ``on_ready`` gets the base URL once bound."""
    runner, base_url = await start_site(build_app(config), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    log.info("demo api listening", extra={"base_url": base_url, "config": config.model_dump(mode="json")})
    on_ready(base_url)
    try:
        await stop.wait()
    finally:
        log.info("demo api stopping", extra={"base_url": base_url})
        await runner.cleanup()
