"""The four listing endpoints over HTTP: complete, duplicate-free paging, since, ticks, bad input."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, running_demo_api

from .demoapi_http import http_get

N = 1234
CONFIG = DemoApiConfig(
    dataset=DatasetConfig(seed=5, initial_records=N, growth_per_tick=7, update_fraction=0.05),
    max_page_size=500,
)


def _links(header: str) -> dict[str, str]:
    return {rel: url for url, rel in re.findall(r'<([^>]+)>;\s*rel="(\w+)"', header)}


@pytest.fixture
def api() -> Iterator[DemoApiHandle]:
    with running_demo_api(CONFIG) as handle:
        yield handle


def _walk(
    handle: DemoApiHandle, style: str, size: int, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Every record the endpoint yields when a client follows its pagination to the end."""
    q = (f"&since={since}" if since else "") + (f"&until={until}" if until else "")
    out: list[dict[str, Any]] = []
    if style == "link":
        url: str | None = handle.url(f"/v1/link/items?per_page={size}{q}")
        while url:
            status, headers, body = http_get(url)
            assert status == 200
            out += json.loads(body)
            url = _links(headers.get("Link", "")).get("next")
            assert url is None or url.startswith(handle.base_url + "/v1/link/items?")  # absolute
    elif style == "cursor":
        status, _, body = http_get(handle.url(f"/v1/cursor/items?limit={size}{q}"))
        page = json.loads(body)
        out += page["data"]
        while page["next_cursor"]:
            status, _, body = http_get(
                handle.url(f"/v1/cursor/items?limit={size}&cursor={page['next_cursor']}")
            )
            assert status == 200
            page = json.loads(body)
            out += page["data"]
    elif style == "pages":
        page_no = 1
        while True:
            status, _, body = http_get(handle.url(f"/v1/pages/items?per_page={size}&page={page_no}{q}"))
            page = json.loads(body)
            assert (page["page"], page["per_page"]) == (page_no, size)
            out += page["items"]
            if page_no * size >= page["total"]:
                break
            page_no += 1
    else:
        offset = 0
        while True:
            status, _, body = http_get(handle.url(f"/v1/offset/items?limit={size}&offset={offset}{q}"))
            page = json.loads(body)
            out += page["results"]
            offset += size
            if offset >= page["total"]:
                break
    return out


STYLES = ["link", "cursor", "pages", "offset"]


@pytest.mark.parametrize("style", STYLES)
def test_paging_yields_every_id_once_in_order(api: DemoApiHandle, style: str) -> None:
    records = _walk(api, style, 100)
    assert [r["id"] for r in records] == list(range(1, N + 1))
    # The served bytes are the dataset's records, not just the right ids.
    assert records == list(api.dataset().snapshot())


@pytest.mark.parametrize("style", STYLES)
def test_since_returns_exactly_the_changed_records(api: DemoApiHandle, style: str) -> None:
    before = {r["id"]: r for r in api.dataset().snapshot()}
    api.tick(2)
    after = list(api.dataset(at_tick=2).snapshot())
    since = "2024-01-01T00:00:00Z"  # the epoch: everything newer changed in ticks 1-2
    expected = sorted(
        ((r["updated_at"], r["id"]) for r in after if r["id"] not in before or r != before[r["id"]]),
    )
    # Independent of the snapshot diff: the 14 grown ids plus every id either tick revised.
    replica = api.dataset(at_tick=0)
    revised = set(replica.updated_ids_at(1)) | set(replica.updated_ids_at(2))
    assert {i for _, i in expected} == revised | set(range(N + 1, N + 15))
    got = _walk(api, style, 7, since=since)
    assert [(r["updated_at"], r["id"]) for r in got] == expected
    assert all(r["updated_at"] >= since for r in got)


@pytest.mark.parametrize("style", STYLES)
def test_tick_shows_new_and_revised_records(api: DemoApiHandle, style: str) -> None:
    old = {r["id"]: r for r in _walk(api, style, 500)}
    state = api.tick(1)
    assert state["tick"] == 1 and state["total_records"] == N + 7
    new = {r["id"]: r for r in _walk(api, style, 500)}
    assert sorted(new) == list(range(1, N + 8))
    revised = set(api.dataset().updated_ids_at(1))
    assert len(revised) == state["updated_last_tick"] == round(0.05 * N)
    for i in revised:
        assert new[i]["updated_at"] > old[i]["updated_at"]
    assert {i for i in old if new[i] != old[i]} == revised
    assert min(new[i]["updated_at"] for i in range(N + 1, N + 8)) > max(r["updated_at"] for r in old.values())


def test_link_header_shape(api: DemoApiHandle) -> None:
    status, headers, body = http_get(api.url("/v1/link/items?per_page=100&page=2&since=2000-01-01T00:00:00Z"))
    links = _links(headers["Link"])
    assert status == 200 and len(json.loads(body)) == 100
    assert set(links) == {"prev", "first", "next", "last"}
    assert "page=3" in links["next"] and "since=2000-01-01T00:00:00Z" in links["next"]
    assert "page=13" in links["last"] and "per_page=100" in links["last"]
    _, headers, body = http_get(links["last"])
    assert len(json.loads(body)) == N - 1200 and "next" not in _links(headers["Link"])


def test_page_size_is_clamped_to_the_maximum(api: DemoApiHandle) -> None:
    _, _, body = http_get(api.url("/v1/pages/items?per_page=100000"))
    page = json.loads(body)
    assert page["per_page"] == 500 and len(page["items"]) == 500 and page["total"] == N


def test_past_the_end_is_empty(api: DemoApiHandle) -> None:
    _, _, body = http_get(api.url("/v1/offset/items?offset=5000&limit=10"))
    assert json.loads(body) == {"results": [], "total": N}
    _, _, body = http_get(api.url("/v1/cursor/items?since=2030-01-01T00:00:00Z"))
    assert json.loads(body) == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/link/items?per_page=0",
        "/v1/link/items?page=0",
        "/v1/link/items?page=abc",
        "/v1/pages/items?per_page=1.5",
        "/v1/offset/items?offset=-1",
        "/v1/offset/items?limit=",
        "/v1/cursor/items?cursor=not-a-cursor",
        "/v1/cursor/items?cursor=djE6aTotNQ",  # base64 of "v1:i:-5"
        "/v1/pages/items?since=yesterday",
    ],
)
def test_bad_params_are_400_with_json(api: DemoApiHandle, path: str) -> None:
    status, headers, body = http_get(api.url(path))
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)
    assert error["error"] == "bad_request" and error["message"]
    assert api.state()["bad_requests"] == 1


def test_healthz_and_unknown_paths(api: DemoApiHandle) -> None:
    status, _, body = http_get(api.url("/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert http_get(api.url("/v1/nope"))[0] == 404


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("style", ["link", "pages", "offset"])
def test_until_cuts_time_windows_that_partition_the_listing(api: DemoApiHandle, style: str) -> None:
    api.tick(3)
    records = list(api.dataset().snapshot())
    everything = sorted((r["updated_at"], r["id"]) for r in records)
    # Windows of 10 days over the initial span (30 days before the epoch), a half-open last one
    # ending mid-second, then one past the ticks: together exactly the listing, each record once.
    bounds = [
        "2023-11-01T00:00:00Z",
        "2023-12-05T00:00:00Z",
        "2023-12-15T00:00:00Z",
        "2023-12-25T00:00:00Z",
        "2024-01-01T00:01:00.500Z",
        "2024-02-01T00:00:00Z",
    ]
    windows = [_walk(api, style, 13, since=a, until=b) for a, b in itertools.pairwise(bounds)]
    assert all(windows)  # every window holds records, so the boundaries are really exercised
    for (start, end), got in zip(itertools.pairwise(bounds), windows, strict=True):
        assert all(_when(start) <= _when(r["updated_at"]) < _when(end) for r in got)
    assert [(r["updated_at"], r["id"]) for w in windows for r in w] == everything


def test_until_before_since_is_a_bad_request(api: DemoApiHandle) -> None:
    status, _, body = http_get(
        api.url("/v1/link/items?since=2024-01-02T00:00:00Z&until=2024-01-01T00:00:00Z")
    )
    assert status == 400 and b"until must not be before since" in body


def test_the_request_log_lists_listing_requests_in_order(api: DemoApiHandle) -> None:
    api.requests(clear=True)
    http_get(api.url("/v1/link/items?per_page=5&since=2024-01-01T00:00:00Z&until=2024-01-02T00:00:00Z"))
    http_get(api.url("/v1/pages/items?page=2"))
    http_get(api.url("/healthz"))  # not a listing: not logged
    assert api.requests() == [
        "GET /v1/link/items?per_page=5&since=2024-01-01T00:00:00Z&until=2024-01-02T00:00:00Z",
        "GET /v1/pages/items?page=2",
    ]
