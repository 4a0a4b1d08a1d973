"""Opaque-cursor pagination: the next cursor comes from the body (JSONPath) or a response header."""

from __future__ import annotations

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator
from restlake.fetcher.records import compile_path, scalar_text


class CursorPaginator(Paginator):
    def __init__(
        self,
        *,
        param: str,
        cursor_path: str | None = None,
        cursor_header: str | None = None,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages)
        self.param = param
        self._path = compile_path(cursor_path) if cursor_path else None
        self.cursor_header = cursor_header

    def next(self, page: Page) -> PageRequest | None:
        if self._path is not None:
            cursor = scalar_text(self._path(page.body))
        else:
            cursor = page.headers.get(self.cursor_header or "")
        if not cursor or not page.records:
            return None
        if page.request.params.get(self.param) == cursor:
            return None  # a cursor that repeats would loop forever
        return PageRequest(
            url=page.request.url, params={**page.request.params, self.param: cursor}, cursor=cursor
        )
