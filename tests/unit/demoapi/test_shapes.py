"""The demo API's listings shaped like DRF, HAL, Stripe, Notion, JSON Lines and CSV: bodies, validators,
bad input and faults. Walking them to the end is in tests/unit/fetcher/test_api_patterns.py."""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, running_demo_api

from .demoapi_http import http_get

N = 25


@pytest.fixture(scope="module")
def api() -> Iterator[DemoApiHandle]:
    config = DemoApiConfig(dataset=DatasetConfig(seed=9, initial_records=N, growth_per_tick=3))
    with running_demo_api(config) as handle:
        yield handle


def _post(api: DemoApiHandle, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        api.url(path), data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_drf_and_hal_bodies(api: DemoApiHandle) -> None:
    status, _, raw = http_get(api.url("/v1/drf/items?page_size=10&page=2"))
    drf = json.loads(raw)
    assert status == 200 and drf["count"] == N
    assert (drf["next"], drf["previous"]) == (
        api.url("/v1/drf/items?page_size=10&page=3"),
        api.url("/v1/drf/items?page_size=10&page=1"),
    )
    assert [r["id"] for r in drf["results"]] == list(range(11, 21))
    status, _, raw = http_get(api.url("/v1/hal/items?size=10&page=3"))
    hal = json.loads(raw)
    assert [r["id"] for r in hal["_embedded"]["items"]] == list(range(21, 26))
    assert hal["_links"] == {"self": {"href": "/v1/hal/items?size=10&page=3"}}  # last page: no next
    assert hal["page"] == {"number": 3, "size": 10, "totalElements": N}


def test_stripe_list_and_bad_starting_after(api: DemoApiHandle) -> None:
    _, _, raw = http_get(api.url("/v1/stripe/items?limit=10&starting_after=10"))
    page = json.loads(raw)
    assert (page["object"], page["has_more"], [r["id"] for r in page["data"]]) == (
        "list",
        True,
        list(range(11, 21)),
    )
    _, _, raw = http_get(api.url("/v1/stripe/items?limit=10&starting_after=20"))
    assert json.loads(raw)["has_more"] is False
    status, _, raw = http_get(api.url("/v1/stripe/items?starting_after=ch_1"))
    assert status == 400 and "starting_after must be the id of a record" in json.loads(raw)["message"]


def test_notion_query_pages_by_body_and_rejects_bad_bodies(api: DemoApiHandle) -> None:
    status, first = _post(api, "/v1/notion/query", b'{"page_size": 20}')
    assert status == 200 and first["has_more"] is True and len(first["results"]) == 20
    body = json.dumps({"page_size": 20, "start_cursor": first["next_cursor"]}).encode()
    status, rest = _post(api, "/v1/notion/query", body)
    assert [r["id"] for r in rest["results"]] == list(range(21, 26))
    assert (rest["has_more"], rest["next_cursor"]) == (False, None)
    assert _post(api, "/v1/notion/query", b'{"page_size": 0}')[0] == 400
    assert _post(api, "/v1/notion/query", b"[1]")[1]["message"] == "the body must be a JSON object"
    assert _post(api, "/v1/notion/query", b'{"start_cursor": "zz"}')[1]["message"] == "invalid cursor"


def test_line_formats_carry_content_types_and_validators(api: DemoApiHandle) -> None:
    status, headers, raw = http_get(api.url("/v1/jsonl/items?per_page=10&page=3"))
    assert status == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    assert [json.loads(line)["id"] for line in raw.decode().splitlines()] == list(range(21, 26))
    again, _, _ = http_get(api.url("/v1/jsonl/items?per_page=10&page=3"), {"If-None-Match": headers["ETag"]})
    assert again == 304
    status, headers, raw = http_get(api.url("/v1/csv/items?per_page=10&page=1"))
    assert headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 11)]
    assert set(rows[0]) == {
        "id",
        "created_at",
        "updated_at",
        "name",
        "status",
        "amount",
        "tags",
        "owner_login",
    }


def test_faults_apply_to_the_post_query_too(api: DemoApiHandle) -> None:
    api.set_faults(fail_next=1, error_status=503)
    try:
        assert _post(api, "/v1/notion/query", b"{}")[0] == 503
        assert _post(api, "/v1/notion/query", b"{}")[0] == 200
    finally:
        api.clear_faults()
