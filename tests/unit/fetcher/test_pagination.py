from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from restlake.contracts.spec import JsonPath, NextUrlPagination, parse_source
from restlake.fetcher.pagination import make_paginator
from restlake.fetcher.pagination.base import Page, PageRequest
from restlake.fetcher.pagination.cursor import CursorPaginator
from restlake.fetcher.pagination.link_header import LinkHeaderPaginator, parse_link_header
from restlake.fetcher.pagination.next_url import CrossOriginLinkError, NextUrlPaginator
from restlake.fetcher.pagination.offset import OffsetPaginator
from restlake.fetcher.pagination.page_number import PageNumberPaginator


def _page(request: PageRequest, body: object, records: list, **headers: str) -> Page:
    return Page(request, CIMultiDictProxy(CIMultiDict(headers)), body, records)


def test_parse_link_header_handles_quotes_multiple_rels_and_spacing() -> None:
    value = (
        '<https://a/x?page=2>; rel="next", <https://a/x?page=9>;rel=last, '
        '<https://a/x?page=1>; rel="first prev"'
    )
    assert parse_link_header(value) == {
        "next": "https://a/x?page=2",
        "last": "https://a/x?page=9",
        "first": "https://a/x?page=1",
        "prev": "https://a/x?page=1",
    }


def test_link_header_follows_absolute_and_relative_next_links() -> None:
    paginator = LinkHeaderPaginator()
    first = paginator.first(URL("http://api/v1/items"), {"per_page": "2"})
    nxt = paginator.next(_page(first, [], [{}], Link='<http://api/v1/items?page=2&per_page=2>; rel="next"'))
    assert nxt is not None
    assert str(nxt.full_url()) == "http://api/v1/items?page=2&per_page=2"
    relative = paginator.next(_page(nxt, [], [{}], Link='</v2/other?after=abc>; rel="next"'))
    assert relative is not None
    assert str(relative.full_url()) == "http://api/v2/other?after=abc"
    assert paginator.next(_page(relative, [], [{}])) is None


def test_cursor_stops_on_null_repeat_or_empty_page() -> None:
    paginator = CursorPaginator(param="cursor", cursor_path="$.next")
    first = paginator.first(URL("http://api/items"), {"limit": "2"})
    second = paginator.next(_page(first, {"next": "c2"}, [{}]))
    assert second is not None
    assert second.params == {"limit": "2", "cursor": "c2"}
    assert paginator.next(_page(second, {"next": "c2"}, [{}])) is None  # repeated cursor
    assert paginator.next(_page(second, {"next": None}, [{}])) is None
    assert paginator.next(_page(second, {"next": "c3"}, [])) is None


def test_cursor_from_header() -> None:
    paginator = CursorPaginator(param="after", cursor_header="X-Next-Cursor")
    first = paginator.first(URL("http://api/items"), {})
    nxt = paginator.next(_page(first, [], [{}], **{"X-Next-Cursor": "abc"}))
    assert nxt is not None
    assert nxt.params == {"after": "abc"}


def test_page_number_stops_on_short_page_and_total() -> None:
    paginator = PageNumberPaginator(param="page", size=2, size_param="per_page", total_path="$.total")
    first = paginator.first(URL("http://api/items"), {})
    assert first.params == {"page": "1", "per_page": "2"}
    second = paginator.next(_page(first, {"total": 5}, [{}, {}]))
    assert second is not None
    assert second.params["page"] == "2"
    assert paginator.next(_page(second, {"total": 4}, [{}, {}])) is None  # total reached
    assert paginator.next(_page(second, {}, [{}])) is None  # short page


def test_offset_advances_by_records_and_stops_at_total() -> None:
    paginator = OffsetPaginator(limit=3, total_path="$.total")
    first = paginator.first(URL("http://api/items"), {"q": "x"})
    assert first.params == {"q": "x", "offset": "0", "limit": "3"}
    second = paginator.next(_page(first, {"total": 7}, [{}, {}, {}]))
    assert second is not None
    assert second.params["offset"] == "3"
    third = paginator.next(_page(second, {"total": 7}, [{}, {}, {}]))
    assert third is not None
    assert third.params["offset"] == "6"
    assert paginator.next(_page(third, {"total": 6}, [{}, {}, {}])) is None


def test_next_url_follows_absolute_drf_and_relative_hal_links() -> None:
    drf = NextUrlPaginator(next_url_path="$.next")
    first = drf.first(URL("http://api/v1/items"), {"page_size": "2"})
    nxt = drf.next(_page(first, {"next": "http://api/v1/items?page=2&page_size=2", "results": [{}]}, [{}]))
    assert nxt is not None
    assert (nxt.url, nxt.params, nxt.cursor) == (
        URL("http://api/v1/items"),
        {"page": "2", "page_size": "2"},
        "http://api/v1/items?page=2&page_size=2",
    )
    assert drf.next(_page(nxt, {"next": None, "results": [{}]}, [{}])) is None
    assert drf.next(_page(nxt, {"results": [{}]}, [{}])) is None  # no next key at all
    hal = NextUrlPaginator(next_url_path="$._links.next.href")
    deep = hal.first(URL("http://api:8080/v1/hal/items"), {"size": "5"})
    relative = hal.next(_page(deep, {"_links": {"next": {"href": "/v1/hal/items?page=2&size=5"}}}, [{}]))
    assert relative is not None
    assert str(relative.full_url()) == "http://api:8080/v1/hal/items?page=2&size=5"


def test_next_url_on_another_origin_is_refused() -> None:
    paginator = NextUrlPaginator(next_url_path="$.next")
    first = paginator.first(URL("https://api.example.test/items"), {})
    for elsewhere in ("https://evil.example.test/items?page=2", "http://api.example.test/items?page=2"):
        with pytest.raises(CrossOriginLinkError, match="not on the origin of the page it came from"):
            paginator.next(_page(first, {"next": elsewhere}, [{}]))
    same = paginator.next(_page(first, {"next": "https://api.example.test:443/items?page=2"}, [{}]))
    assert same is not None and same.params == {"page": "2"}


def test_has_more_false_ends_every_body_paginator() -> None:
    stop, go = {"has_more": False, "next": "http://api/x?page=2", "c": "c2"}, {"has_more": True, "c": "c2"}
    paginators = [
        NextUrlPaginator(next_url_path="$.next", has_more_path="$.has_more"),
        CursorPaginator(param="cursor", cursor_path="$.c", has_more_path="$.has_more"),
        PageNumberPaginator(size=1, size_param="per_page", has_more_path="$.has_more"),
        OffsetPaginator(limit=1, has_more_path="$.has_more"),
    ]
    for paginator in paginators:
        first = paginator.first(URL("http://api/x"), {})
        assert paginator.next(_page(first, stop, [{}])) is None, type(paginator).__name__
    # true (or absent) leaves the decision to the paginator's own rule
    assert paginators[1].next(_page(paginators[1].first(URL("http://api/x"), {}), go, [{}])) is not None
    assert paginators[3].next(_page(paginators[3].first(URL("http://api/x"), {}), {}, [{}])) is not None


def test_cursor_from_last_record_stripe_style() -> None:
    paginator = CursorPaginator(
        param="starting_after", cursor_from_last_record="$.id", has_more_path="$.has_more"
    )
    first = paginator.first(URL("http://api/v1/charges"), {"limit": "3"})
    body = {"data": [{"id": 7}, {"id": 9}, {"id": 12}], "has_more": True}
    second = paginator.next(_page(first, body, body["data"]))
    assert second is not None
    assert (second.params, second.cursor) == ({"limit": "3", "starting_after": "12"}, "12")
    assert paginator.next(_page(second, {"data": [{"id": 13}], "has_more": False}, [{"id": 13}])) is None
    assert paginator.next(_page(second, {"data": [], "has_more": True}, [])) is None  # empty page


def test_cursor_in_post_body_notion_style_keeps_method_body_and_json_types() -> None:
    paginator = CursorPaginator(
        param="start_cursor", cursor_path="$.next_cursor", has_more_path="$.has_more", place="body"
    )
    first = paginator.first(URL("http://api/v1/query"), {}, method="POST", body={"page_size": 2})
    assert (first.method, first.body, first.params) == ("POST", {"page_size": 2}, {})
    second = paginator.next(_page(first, {"next_cursor": "abc", "has_more": True}, [{}, {}]))
    assert second is not None
    assert (second.method, second.body, second.params) == (
        "POST",
        {"page_size": 2, "start_cursor": "abc"},
        {},
    )
    # One URL serves every page: the body is what tells them apart.
    assert first.identity() != second.identity()
    assert second.identity() == 'POST http://api/v1/query {"page_size":2,"start_cursor":"abc"}'
    search_after = CursorPaginator(param="search_after", cursor_from_last_record="$.sort", place="body")
    hits = [{"sort": [1700000000, "doc-9"]}]
    after = search_after.next(
        _page(search_after.first(URL("http://es/_search"), {}, method="POST"), {}, hits)
    )
    assert after is not None and after.body == {"search_after": [1700000000, "doc-9"]}


def test_offset_and_page_number_in_body_are_numbers() -> None:
    offset = OffsetPaginator(limit=2, place="body")
    first = offset.first(URL("http://api/q"), {}, method="POST", body={"q": "x"})
    assert first.body == {"q": "x", "offset": 0, "limit": 2}
    second = offset.next(_page(first, {}, [{}, {}]))
    assert second is not None and second.body == {"q": "x", "offset": 2, "limit": 2}
    pages = PageNumberPaginator(size=2, size_param="size", place="body")
    p1 = pages.first(URL("http://api/q"), {}, method="POST")
    p2 = pages.next(_page(p1, {}, [{}, {}]))
    assert (p1.body, p2.body if p2 else None) == ({"page": 1, "size": 2}, {"page": 2, "size": 2})


def test_factory_builds_next_url_and_passes_new_fields() -> None:
    spec = parse_source(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": "notion"},
            "spec": {
                "request": {"url": "http://api/v1/query", "method": "POST", "body": {"page_size": 2}},
                "pagination": {
                    "type": "cursor",
                    "cursorPath": "$.next_cursor",
                    "hasMorePath": "$.has_more",
                    "param": "start_cursor",
                    "in": "body",
                },
            },
        },
        "t",
    ).spec
    paginator = make_paginator(spec.pagination)
    assert isinstance(paginator, CursorPaginator) and paginator.place == "body"
    first = paginator.first(URL("http://api/v1/query"), {}, method="POST", body={"page_size": 2})
    assert paginator.next(_page(first, {"next_cursor": "n", "has_more": False}, [{}])) is None
    hal = make_paginator(NextUrlPagination(type="nextUrl", next_url_path=JsonPath("$._links.next.href")))
    assert isinstance(hal, NextUrlPaginator)
