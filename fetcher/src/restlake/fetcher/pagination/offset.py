"""``offset=O&limit=N`` pagination; stops on an empty or short page, a declared total or has-more false."""

from __future__ import annotations

from typing import Any

from yarl import URL

from restlake.fetcher.pagination.base import Page, PageRequest, Paginator, ParamPlace
from restlake.fetcher.records import compile_path, scalar_text


class OffsetPaginator(Paginator):
    def __init__(
        self,
        *,
        limit: int,
        offset_param: str = "offset",
        limit_param: str = "limit",
        total_path: str | None = None,
        has_more_path: str | None = None,
        place: ParamPlace = "query",
        max_pages: int | None = None,
    ) -> None:
        super().__init__(max_pages, place=place, has_more_path=has_more_path)
        self.limit = limit
        self.offset_param = offset_param
        self.limit_param = limit_param
        self._total = compile_path(total_path) if total_path else None

    def first(
        self,
        url: URL,
        params: dict[str, str],
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> PageRequest:
        start = super().first(url, params, method=method, body=body)
        return self.with_params(start, {self.offset_param: 0, self.limit_param: self.limit}, "0")

    def next(self, page: Page) -> PageRequest | None:
        if len(page.records) < self.limit or self.says_no_more(page):
            return None
        nxt = int(self.param(page.request, self.offset_param) or "0") + len(page.records)
        if self._total is not None:
            total = scalar_text(self._total(page.body))
            if total is not None and nxt >= int(total):
                return None
        return self.with_params(page.request, {self.offset_param: nxt}, str(nxt))
