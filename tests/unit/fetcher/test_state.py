from __future__ import annotations

import asyncio
from datetime import timedelta

from yarl import URL

from restlake.fetcher.pagination import PageRequest
from restlake.fetcher.state import (
    MAX_BOUNDARY,
    MemoryStateStore,
    PageState,
    boundary_digest,
    page_key,
    request_from_json,
    request_to_json,
)
from restlake.fetcher.watermark import newest, request_value, sort_key


def test_continuation_round_trips_with_query_order_kept() -> None:
    request = PageRequest(URL("http://api/v1/items"), {"per_page": "50", "page": "2"}, cursor="2")
    again = request_from_json(request_to_json(request))
    assert again == request
    assert str(again.full_url()) == "http://api/v1/items?per_page=50&page=2"
    assert request_from_json(None) is None and request_to_json(None) is None


def test_page_state_conditional_headers() -> None:
    assert PageState(
        "u", etag='"a"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT"
    ).conditional_headers() == {
        "If-None-Match": '"a"',
        "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT",
    }
    assert not PageState("u").has_validators
    assert page_key("http://a/b?c=1") != page_key("http://a/b?c=2")
    assert page_key("x" * 10_000).startswith("page:") and len(page_key("x" * 10_000)) == 45


def test_memory_store_commit_watermark_and_prune() -> None:
    store = MemoryStateStore()

    async def scenario() -> None:
        await store.commit("s", [PageState("u1", etag="1"), PageState("u2", etag="2")])
        state = await store.load("s")
        assert {p.url for p in state.pages.values()} == {"u1", "u2"} and state.watermark is None
        await store.commit("s", [PageState("u1", etag="1b")], watermark="w", keep_only={page_key("u1")})
        state = await store.load("s")
        assert [p.etag for p in state.pages.values()] == ["1b"] and state.watermark == "w"
        assert (await store.load("other")).pages == {}

    asyncio.run(scenario())


def test_watermark_ordering_by_kind() -> None:
    assert newest("2024-01-01T00:00:09Z", "2024-01-01T00:00:10Z", None) == "2024-01-01T00:00:10Z"
    # Instants, not text: +01:00 is earlier than the Z value here.
    assert newest("2024-01-01T00:30:00+01:00", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:00Z"
    assert newest("9", "10") == "10"
    assert newest(None, None) is None
    assert sort_key("abc") < sort_key("5") < sort_key("2024-01-01T00:00:00Z")


def test_request_value_applies_lookback_to_timestamps_only() -> None:
    assert request_value("2024-01-01T00:05:00Z", timedelta(minutes=5)) == "2024-01-01T00:00:00Z"
    assert request_value("2024-01-01T00:05:00.250+00:00", timedelta(0)) == "2024-01-01T00:05:00.25Z"
    assert request_value("12345", timedelta(minutes=5)) == "12345"


def test_poll_delay_adds_at_most_the_jitter_fraction() -> None:
    import random

    from restlake.fetcher.service import next_delay

    rng = random.Random(1)
    delays = [next_delay(60.0, 0.1, rng) for _ in range(200)]
    assert all(60.0 <= d <= 66.0 for d in delays) and len(set(delays)) > 100
    assert next_delay(10.0, 0.0) == 10.0


def test_boundary_is_kept_with_the_watermark_and_dropped_when_too_large() -> None:
    store = MemoryStateStore()
    keys = frozenset(boundary_digest(f"s/{i}/hash") for i in range(3))

    async def scenario() -> None:
        await store.commit("s", [], watermark="2026-01-01T00:00:00Z", boundary=keys)
        assert (await store.load("s")).boundary == keys
        # A timestamp shared by more records than MAX_BOUNDARY remembers none: no skipping, no loss.
        huge = frozenset(boundary_digest(f"s/{i}/h") for i in range(MAX_BOUNDARY + 1))
        await store.commit("s", [], watermark="2026-01-02T00:00:00Z", boundary=huge)
        assert (await store.load("s")).boundary == frozenset()

    asyncio.run(scenario())
    assert len(boundary_digest("s/1/abc")) == 16 and boundary_digest("s/1/abc") != boundary_digest("s/1/abd")
