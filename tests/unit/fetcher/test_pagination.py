from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest
from restlake.fetcher.pagination.cursor import CursorPaginator
from restlake.fetcher.pagination.link_header import LinkHeaderPaginator, parse_link_header
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
