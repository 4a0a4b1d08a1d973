"""Each example pattern walked with the fetcher's client, paginator and extractor over the demo API.

No Kafka here (the pass over Kafka is in tests/integration/test_api_patterns.py): this pins what
each shape of API yields page by page, with exact request and record counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from restlake.contracts.spec import IngestionSource, load_source
from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, running_demo_api
from restlake.fetcher.client import BadPageError, RetryPolicy, get_page
from restlake.fetcher.pagination import Page, PageRequest, make_paginator
from restlake.fetcher.records import RecordExtractor
from restlake.runtime.demo import retarget

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
N = 123  # 50 per page: 50, 50, 23
ONE_TRY = RetryPolicy(max_attempts=1)


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApiHandle]:
    config = DemoApiConfig(dataset=DatasetConfig(seed=3, initial_records=N, growth_per_tick=0))
    with running_demo_api(config) as handle:
        yield handle


def _source(name: str, api: DemoApiHandle) -> IngestionSource:
    return retarget(load_source(EXAMPLES / f"{name}.yaml"), api.base_url)


def _walk(source: IngestionSource) -> tuple[list[PageRequest], list[Any]]:
    """Every request made and every record extracted, following the paginator to its end."""
    spec = source.spec
    paginator = make_paginator(spec.pagination)
    extractor = RecordExtractor(spec.records.path, spec.records.id_path, spec.records.version_path)
    url = URL(spec.request.url)
    request: PageRequest | None = paginator.first(
        url.with_query(None),
        {**dict(url.query), **spec.request.params},
        method=spec.request.method,
        body=dict(spec.request.body) if spec.request.body is not None else None,
    )
    requests: list[PageRequest] = []
    records: list[Any] = []

    async def run() -> None:
        nonlocal request
        async with aiohttp.ClientSession() as session:
            while request is not None:
                requests.append(request)
                response = await get_page(
                    session,
                    request,
                    headers={},
                    timeout=10,
                    policy=ONE_TRY,
                    records_format=spec.records.format,
                )
                page = extractor.records(response.body)
                records.extend(page)
                request = paginator.next(Page(request, response.headers, response.body, page))

    asyncio.run(run())
    return requests, records


@pytest.mark.parametrize("name", ["demo-drf", "demo-hal", "demo-stripe", "demo-notion", "demo-jsonl"])
def test_pattern_yields_every_record_once(name: str, api: DemoApiHandle) -> None:
    requests, records = _walk(_source(name, api))
    assert [r["id"] for r in records] == list(range(1, N + 1))
    assert records == list(api.dataset().snapshot())
    # hasMorePath / next: null end the walk on the short page; the page-number walk stops there too.
    assert len(requests) == 3


def test_drf_and_hal_follow_the_links_the_body_names(api: DemoApiHandle) -> None:
    drf, _ = _walk(_source("demo-drf", api))
    assert [r.params for r in drf] == [
        {"page_size": "50"},
        {"page": "2", "page_size": "50"},
        {"page": "3", "page_size": "50"},
    ]
    hal, _ = _walk(_source("demo-hal", api))
    # The relative href resolves against the URL requested: same origin, the link's own query.
    assert [str(r.full_url()) for r in hal][1:] == [
        api.url("/v1/hal/items?size=50&page=2"),
        api.url("/v1/hal/items?size=50&page=3"),
    ]


def test_stripe_and_notion_carry_the_cursor_where_the_api_wants_it(api: DemoApiHandle) -> None:
    stripe, _ = _walk(_source("demo-stripe", api))
    assert [r.params.get("starting_after") for r in stripe] == [None, "50", "100"]
    notion, _ = _walk(_source("demo-notion", api))
    assert {r.method for r in notion} == {"POST"} and all(not r.params for r in notion)
    assert [r.body["page_size"] for r in notion if r.body] == [50, 50, 50]
    assert notion[0].body == {"page_size": 50}
    assert all(isinstance(r.body, dict) and isinstance(r.body["start_cursor"], str) for r in notion[1:])


def test_csv_records_are_rows_keyed_by_the_header(api: DemoApiHandle) -> None:
    requests, records = _walk(_source("demo-csv", api))
    assert len(requests) == 3 and len(records) == N
    first = api.dataset().record(1)
    assert records[0] == {
        "id": "1",
        "created_at": first["created_at"],
        "updated_at": first["updated_at"],
        "name": first["name"],
        "status": first["status"],
        "amount": repr(first["amount"]),
        "tags": ";".join(first["tags"]),
        "owner_login": first["owner"]["login"],
    }
    assert [r["id"] for r in records] == [str(i) for i in range(1, N + 1)]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_truncated_line_body_is_a_bad_page_naming_the_line(fmt: str, api: DemoApiHandle) -> None:
    request = PageRequest(URL(api.url(f"/v1/{fmt}/items")), {"page": "1", "per_page": "50"})

    async def fetch() -> Any:
        async with aiohttp.ClientSession() as session:
            return await get_page(
                session, request, headers={}, timeout=10, policy=ONE_TRY, records_format=fmt
            )

    api.set_faults(truncate_rate=1.0)
    try:
        with pytest.raises(BadPageError) as info:
            asyncio.run(fetch())
    finally:
        api.clear_faults()
    assert info.value.reason == f"malformed_{fmt}"
    # The fault cuts the body in half: the line it cuts is the last one, and the error names it.
    assert info.value.raw is not None
    cut_line = info.value.raw.count(b"\n") + 1
    expected = "not a JSON value" if fmt == "jsonl" else "values for the header's 8 columns"
    assert str(info.value).startswith(f"malformed {fmt} body at line {cut_line}: ")
    assert expected in str(info.value)
