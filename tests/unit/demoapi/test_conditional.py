"""ETag / Last-Modified: 304 while a page is unchanged, 200 with a new ETag once a tick changes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from email.utils import parsedate_to_datetime

import pytest

from restlake.demoapi import DatasetConfig, DemoApiConfig, DemoApiHandle, running_demo_api
from restlake.demoapi.conditional import etag_matches

from .demoapi_http import http_get

CONFIG = DemoApiConfig(
    dataset=DatasetConfig(seed=9, initial_records=1000, growth_per_tick=0, update_fraction=0.01)
)


@pytest.fixture
def api() -> Iterator[DemoApiHandle]:
    with running_demo_api(CONFIG) as handle:
        yield handle


PAGES = [
    "/v1/link/items?per_page=50&page={p}",
    "/v1/pages/items?per_page=50&page={p}",
    "/v1/offset/items?limit=50&offset={o}",
]


@pytest.mark.parametrize("template", PAGES)
def test_etag_revalidation_across_a_tick(api: DemoApiHandle, template: str) -> None:
    revised = set(api.dataset(at_tick=0).updated_ids_at(1))
    pages = [range(p * 50 + 1, p * 50 + 51) for p in range(20)]
    touched = next(p for p, ids in enumerate(pages) if revised & set(ids))
    untouched = next(p for p, ids in enumerate(pages) if not revised & set(ids))

    def url(page: int) -> str:
        return api.url(template.format(p=page + 1, o=page * 50))

    tags = {}
    for page in (touched, untouched):
        status, headers, body = http_get(url(page))
        assert status == 200 and headers["ETag"].startswith('"') and body
        tags[page] = headers["ETag"]
        status, headers, body = http_get(url(page), {"If-None-Match": tags[page]})
        assert (status, body, headers["ETag"]) == (304, b"", tags[page])

    api.tick(1)
    status, headers, body = http_get(url(touched), {"If-None-Match": tags[touched]})
    assert status == 200 and headers["ETag"] != tags[touched]
    assert http_get(url(touched), {"If-None-Match": headers["ETag"]})[0] == 304
    # No growth and none of its rows revised: the page is byte-identical, so still 304.
    assert http_get(url(untouched), {"If-None-Match": tags[untouched]})[0] == 304
    assert api.state()["not_modified"] == 4


def test_etag_differs_between_endpoints_and_pages(api: DemoApiHandle) -> None:
    tags = {
        http_get(api.url(path))[1]["ETag"]
        for path in (
            "/v1/link/items?per_page=10",
            "/v1/link/items?per_page=10&page=2",
            "/v1/cursor/items?limit=10",
        )
    }
    assert len(tags) == 3


def test_if_modified_since(api: DemoApiHandle) -> None:
    _, headers, _ = http_get(api.url("/v1/cursor/items?limit=20"))
    last_modified = headers["Last-Modified"]
    assert last_modified.endswith("GMT")
    assert http_get(api.url("/v1/cursor/items?limit=20"), {"If-Modified-Since": last_modified})[0] == 304
    older = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert http_get(api.url("/v1/cursor/items?limit=20"), {"If-Modified-Since": older})[0] == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110): a stale tag means 200.
    stale = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert http_get(api.url("/v1/cursor/items?limit=20"), stale)[0] == 200


def test_last_modified_is_the_newest_row(api: DemoApiHandle) -> None:
    revised = sorted(api.dataset(at_tick=0).updated_ids_at(1))
    api.tick(1)
    first = revised[0]
    _, headers, body = http_get(api.url(f"/v1/offset/items?offset={first - 1}&limit=1"))
    row = json.loads(body)["results"][0]
    assert row["id"] == first
    assert parsedate_to_datetime(headers["Last-Modified"]) == datetime.fromisoformat(
        row["updated_at"].replace("Z", "+00:00")
    )


def test_etag_matching_rules() -> None:
    assert etag_matches('"a", "b"', '"b"')
    assert etag_matches('W/"b"', '"b"')
    assert etag_matches("*", '"x"')
    assert not etag_matches('"a"', '"b"')
