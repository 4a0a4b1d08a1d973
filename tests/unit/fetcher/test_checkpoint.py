"""The pass's watermark bookkeeping and page reading, without a pass around them."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from restlake.fetcher.checkpoint import WatermarkProgress
from restlake.fetcher.client import BadPageError, Response
from restlake.fetcher.page_reader import PageReader
from restlake.fetcher.pagination.base import PageRequest
from restlake.fetcher.pagination.next_url import CrossOriginLinkError, NextUrlPaginator
from restlake.fetcher.records import RecordExtractor
from restlake.fetcher.state import SourceState, boundary_digest
from restlake.fetcher.watermark import sort_key

T1, T2 = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def test_records_at_the_stored_watermark_are_skipped_only_when_the_boundary_holds_them() -> None:
    progress = WatermarkProgress(SourceState(watermark=T1, boundary=frozenset({boundary_digest("k1")})))
    assert progress.already_delivered(sort_key(T1), "k1")
    assert not progress.already_delivered(sort_key(T1), "k2")  # new at the watermark: published
    assert not progress.already_delivered(sort_key(T2), "k3")
    progress.page_walked(T2)
    # The new watermark's boundary is the records seen at it, not the old set.
    assert progress.advanced() == (T2, frozenset({boundary_digest("k3")}))


def test_an_unmoved_watermark_keeps_the_stored_boundary_when_no_record_stood_at_it() -> None:
    stored = frozenset({boundary_digest("k1")})
    progress = WatermarkProgress(SourceState(watermark=T2, boundary=stored))
    progress.page_walked(T1)  # a 304's stored maximum, below the watermark
    assert progress.advanced() == (T2, stored)
    assert WatermarkProgress(SourceState()).advanced() == (None, None)


def _response(body: object) -> Response:
    return Response(200, CIMultiDictProxy(CIMultiDict()), body, 1)


def _reader(fail_on_missing_id: bool = False) -> PageReader:
    request = PageRequest(URL("http://api.test/items"))
    return PageReader(
        request,
        RecordExtractor("items", "id", None),
        NextUrlPaginator(next_url_path="next"),
        id_path="id",
        fail_on_missing_id=fail_on_missing_id,
    )


def test_the_reader_keeps_what_the_hook_accepted_and_where_the_page_leads() -> None:
    reader = _reader()
    response = _response({"items": [{"id": 1}], "next": "http://api.test/items?page=2"})
    reader(response)
    page = reader.page_of(response)
    assert page.records == [{"id": 1}] and page.refused is None
    assert page.following is not None and page.following.params == {"page": "2"}


def test_a_next_link_to_another_origin_is_refused_but_the_page_is_kept() -> None:
    reader = _reader()
    response = _response({"items": [{"id": 1}], "next": "http://elsewhere.test/items?page=2"})
    page = reader.page_of(response)
    assert page.records == [{"id": 1}] and page.following is None
    assert isinstance(page.refused, CrossOriginLinkError) and page.refused.reason == "cross_origin_link"


def test_missing_ids_make_the_page_a_bad_one_when_the_policy_is_fail() -> None:
    with pytest.raises(BadPageError, match="1 of 2 record") as raised:
        _reader(fail_on_missing_id=True)(_response({"items": [{"id": 1}, {"x": 2}]}))
    assert raised.value.reason == "missing_id"
    with pytest.raises(BadPageError) as raised:
        _reader()(_response({"items": "not a list"}))
    assert raised.value.reason == "no_record_list"
