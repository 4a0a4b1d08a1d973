"""Bodies Python's JSON parser refuses in ways other than ``JSONDecodeError``, and the inspect hook.

Each is a bad page: retried like a malformed body, then raised as ``BadPageError`` with its reason.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from restlake.fetcher.client import BadPageError, Response, RetryPolicy, get_page
from restlake.fetcher.pagination.base import PageRequest

from .local_api import serving

FAST = RetryPolicy(max_attempts=3, base_delay=0.0, max_delay=0.0)

BODIES = {
    "deep_nesting": ("[" * 100_000 + "]" * 100_000, "nested deeper than the parser allows"),
    "huge_integer": ('{"id": ' + "9" * 5000 + "}", "int"),
}


def _fetch(body: str, inspect=None) -> tuple[BadPageError | Response, int]:
    hits = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(text=body, content_type="application/json")

    async def run() -> BadPageError | Response:
        app = web.Application()
        app.router.add_get("/items", handler)
        async with serving(app) as base, aiohttp.ClientSession() as session:
            try:
                return await get_page(
                    session,
                    PageRequest(URL(f"{base}/items")),
                    headers={},
                    timeout=5.0,
                    policy=FAST,
                    inspect=inspect,
                )
            except BadPageError as exc:
                return exc

    return asyncio.run(run()), hits


@pytest.mark.parametrize("case", list(BODIES))
def test_unparseable_json_is_a_retried_bad_page(case: str) -> None:
    body, words = BODIES[case]
    outcome, hits = _fetch(body)
    assert isinstance(outcome, BadPageError)
    assert outcome.reason == "malformed_json"
    assert words in str(outcome)
    assert outcome.raw is not None and len(outcome.raw) == len(body.encode())
    assert hits == FAST.max_attempts
    assert outcome.attempts == FAST.max_attempts  # type: ignore[attr-defined]


def test_an_inspect_refusal_is_retried_then_raised_and_an_acceptance_returns_the_page() -> None:
    seen: list[object] = []

    def refuse(response: Response) -> None:
        seen.append(response.body)
        raise BadPageError("no usable total", reason="bad_pagination", status=response.status)

    outcome, hits = _fetch('{"total": "many"}', refuse)
    assert isinstance(outcome, BadPageError) and outcome.reason == "bad_pagination"
    assert hits == FAST.max_attempts and seen == [{"total": "many"}] * FAST.max_attempts

    accepted, hits = _fetch('{"total": 3}', seen.append)
    assert isinstance(accepted, Response) and accepted.body == {"total": 3} and hits == 1
