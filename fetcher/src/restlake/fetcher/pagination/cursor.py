"""Opaque-cursor pagination: the next cursor comes from the body, a response header or the last record."""

from __future__ import annotations

import json
from typing import Any

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator, ParamPlace
from restlake.fetcher.records import compile_path, is_missing, scalar_text


class CursorPaginator(Paginator):
    def __init__(
        self,
        *,
        param: str,
        cursor_path: str | None = None,
        cursor_header: str | None = None,
        cursor_from_last_record: str | None = None,
        has_more_path: str | None = None,
        place: ParamPlace = "query",
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages, place=place, has_more_path=has_more_path)
        self.param_name = param
        self._path = compile_path(cursor_path) if cursor_path else None
        self._last = compile_path(cursor_from_last_record) if cursor_from_last_record else None
        self.cursor_header = cursor_header

    def _cursor(self, page: Page) -> Any:
        if self._path is not None:
            return self._path(page.body)
        if self._last is not None:
            # Stripe's starting_after, Elasticsearch's search_after: the last record says where to go on.
            return self._last(page.records[-1])
        return page.headers.get(self.cursor_header or "")

    def next(self, page: Page) -> PageRequest | None:
        if not page.records or self.says_no_more(page):
            return None
        raw = self._cursor(page)
        if is_missing(raw) or raw is None or raw == "":
            return None
        # A structured cursor (search_after's list of sort values) goes into a body as it is.
        text = scalar_text(raw)
        if text is None:
            text = json.dumps(raw, sort_keys=True, separators=(",", ":"))
        if self.param(page.request, self.param_name) == text:
            return None  # a cursor that repeats would loop forever
        value = raw if self.place == "body" else text
        return self.with_params(page.request, {self.param_name: value}, text)
